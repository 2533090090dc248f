"""A held lease: its fencing token, background renewal, loss detection and release.

The lease is the lock manager's to end: it expires by the manager's recorded
clock unless a renewal is confirmed. The holder cannot see the manager's clock,
so it keeps a conservative local deadline on its monotonic clock (the lease
length minus how old the decision already was when it arrived) and treats the
lease as lost when that passes without a confirmed renewal. ``lost`` is
advisory: the protection of a write is the fencing token at the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from agentlog.errors import AgentlogError
from agentlog.schemas.events import LockExpired, LockGranted, LockReleased, LockRenewed

from .commands import LockCommand, LockDecision, release_event, renew_event
from .errors import LockLostError
from .tail import Watch

logger = logging.getLogger(__name__)

#: Sends one command to the resource's home partition and waits for the ack.
SendCommand = Callable[[LockCommand], Awaitable[None]]


def remaining_seconds(decided_at: datetime, expires_at: datetime, received_at: datetime) -> float:
    """How long a lease decided at ``decided_at`` still runs when it arrives at ``received_at``.

    ``decided_at`` and ``expires_at`` are the manager's clock; ``received_at``
    is ours. Clock offsets only ever shorten the estimate (a decision that
    seems to come from the future counts as fresh).
    """
    length = (expires_at - decided_at).total_seconds()
    age = max(0.0, (received_at - decided_at).total_seconds())
    return max(0.0, length - age)


class Lease:
    """A granted lock: ``token`` goes with every write the lock protects.

    Attributes:
        resource: the resource.
        request_id: the request the lease was granted to.
        requester: who holds it.
        token: the fencing token (strictly increasing per resource).
        granted_at: when the manager granted it (its clock).
        expires_at: when it ends unless renewed (the manager's clock; updated on renewal).
        lost: set when the lease ended without a release: the manager expired
            it, or no renewal was confirmed before the local deadline.
        lost_reason: why, once ``lost`` is set.
    """

    def __init__(
        self,
        granted: LockGranted,
        watch: Watch,
        send: SendCommand,
        *,
        ttl_ms: int,
        renew: bool,
        source: str,
        release_timeout: float,
        on_end: Callable[[Lease], None],
    ) -> None:
        self.resource = granted.resource
        self.request_id = granted.request_id
        self.requester = granted.requester
        self.token = granted.fencing_token
        self.granted_at = granted.envelope.occurred_at
        self.expires_at = granted.lease_expires_at
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self._correlation_id = granted.envelope.correlation_id
        self._grant_id = granted.envelope.event_id
        self._watch = watch
        self._send = send
        self._ttl_ms = ttl_ms
        self._renew = renew
        self._source = source
        self._release_timeout = release_timeout
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + remaining_seconds(
            granted.envelope.occurred_at, granted.lease_expires_at, datetime.now(UTC)
        )
        self._renewed = asyncio.Event()
        self._ended = asyncio.Event()
        self._releasing = False
        self._released = False
        self._keeper = asyncio.create_task(
            self._keep(), name=f"lease {self.resource} token {self.token}"
        )

    def __repr__(self) -> str:
        state = "lost" if self.lost.is_set() else "released" if self._released else "held"
        return f"<Lease {self.resource!r} token={self.token} {state}>"

    @property
    def held(self) -> bool:
        """Neither lost nor released (by this holder's knowledge)."""
        return not self.lost.is_set() and not self._released

    def check(self) -> None:
        """Raise :class:`LockLostError` if the lease is lost; call it before a side effect."""
        if self.lost.is_set():
            raise self.lost_error()

    def lost_error(self) -> LockLostError:
        """The error that describes the loss (or that the lease was released)."""
        reason = self.lost_reason or ("released" if self._released else "unknown")
        return LockLostError(self.resource, self.request_id, self.token, reason)

    async def renew(self, ttl: float | None = None, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a client API in seconds
        """Renew now and wait for the manager's confirmation.

        Args:
            ttl: the new lease length in seconds from the manager's decision
                (default: the length asked for at acquire).
            timeout: how long to wait for the confirmation.

        Raises:
            LockLostError: the lease is lost, or no confirmation came in time.
        """
        self.check()
        self._renewed.clear()
        ttl_ms = self._ttl_ms if ttl is None else max(1, int(ttl * 1000))
        await self._send_renew(ttl_ms)
        try:
            async with asyncio.timeout(timeout):
                await self._renewed.wait()
        except TimeoutError:
            raise LockLostError(
                self.resource, self.request_id, self.token, f"renewal not confirmed in {timeout} s"
            ) from None
        self.check()

    async def release(self) -> None:
        """Give the lease back and wait (up to the client's release timeout) for the manager.

        Idempotent; never raises for a lost lease (check ``lost`` for that).
        """
        if self._released:
            return
        self._released = True
        self._releasing = True
        try:
            if not self._ended.is_set():
                try:
                    await self._send(
                        release_event(
                            self.resource,
                            self.request_id,
                            self.token,
                            source=self._source,
                            reason="released by the holder",
                            causation_id=self._grant_id,
                            correlation_id=self._correlation_id,
                        )
                    )
                except (KafkaError, OSError, AgentlogError) as e:  # it ends at its expiry
                    logger.warning(
                        "releasing %s (token %s) failed: %s; the lease ends at its expiry",
                        self.resource,
                        self.token,
                        e,
                    )
                else:
                    await self._await_end()
        finally:
            await self._close()

    async def _await_end(self) -> None:
        if self._keeper.done():
            return
        try:
            async with asyncio.timeout(self._release_timeout):
                await self._ended.wait()
        except TimeoutError:
            logger.warning(
                "release of %s (token %s) not confirmed within %s s; the lease ends when "
                "the lock manager processes it, or at its expiry",
                self.resource,
                self.token,
                self._release_timeout,
            )

    async def _close(self) -> None:
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper
        self._on_end(self)

    # -- the keeper: renewals, confirmations, expiry ---------------------------------

    async def _keep(self) -> None:
        renew_every = self._ttl_ms / 3000
        next_renew = self._loop.time() + renew_every
        while not self._ended.is_set():
            timeout: float | None = None
            if not self._releasing and not self.lost.is_set():
                now = self._loop.time()
                if now >= self._deadline:
                    ends = self.expires_at.isoformat(timespec="milliseconds")
                    self._lose(
                        f"no renewal confirmed before the lease ran out at {ends} (manager's clock)"
                        if self._renew
                        else f"the lease ran out at {ends} (manager's clock; renew=False)"
                    )
                    continue
                if self._renew and now >= next_renew:
                    await self._try_renew()
                    next_renew = now + renew_every
                    continue
                wake = min(self._deadline, next_renew) if self._renew else self._deadline
                timeout = max(0.0, wake - now)
            try:
                async with asyncio.timeout(timeout):
                    decision = await self._watch.get()
            except TimeoutError:
                continue
            except Exception as e:  # noqa: BLE001 - the tail's failure, reported by losing the lease
                self._lose(f"the lock client stopped reading decisions: {type(e).__name__}: {e}")
                return
            self._apply(decision)

    async def _try_renew(self) -> None:
        try:
            await self._send_renew(self._ttl_ms)
        except (KafkaError, OSError, AgentlogError) as e:  # retried until the deadline
            logger.warning(
                "renewing the lease on %s (token %s) failed: %s", self.resource, self.token, e
            )

    async def _send_renew(self, ttl_ms: int) -> None:
        await self._send(
            renew_event(
                self.resource,
                self.request_id,
                self.token,
                ttl_ms,
                source=self._source,
                causation_id=self._grant_id,
                correlation_id=self._correlation_id,
            )
        )

    def _apply(self, decision: LockDecision) -> None:
        match decision:
            case LockRenewed(fencing_token=token) if token == self.token:
                self.expires_at = decision.lease_expires_at
                self._deadline = self._loop.time() + remaining_seconds(
                    decision.envelope.occurred_at, decision.lease_expires_at, datetime.now(UTC)
                )
                self._renewed.set()
            case LockExpired(fencing_token=token) if token == self.token:
                self._lose(
                    "the lock manager expired it at "
                    f"{decision.envelope.occurred_at.isoformat(timespec='milliseconds')}"
                )
                self._ended.set()
            case LockReleased(fencing_token=token) if token == self.token:
                if not self._releasing:
                    self._lose("released by another command for the same request")
                self._ended.set()

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        self._renewed.set()  # wakes a manual renew(), which then raises
        logger.warning(
            "lease on %s lost (token %s, request %s): %s",
            self.resource,
            self.token,
            self.request_id,
            reason,
        )
