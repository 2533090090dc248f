"""The lock SDK: acquire, hold (renewed in the background) and release leases.

```python
async with LockClient(Settings.from_env()) as locks:
    async with locks.lock("repo:org/name", ttl=30, wait=10) as lease:
        await deploy(fencing_token=lease.token)   # the sink rejects older tokens
```

Requests are events: :meth:`LockClient.acquire` appends a ``LockRequested`` to
the resource's home partition of the locks topic and waits for the lock
manager's decision about its request id, read from the same partition
(:mod:`.tail`). Works from agents and from plain Python; one client serves any
number of concurrent locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from types import TracebackType

from aiokafka.errors import KafkaError

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.errors import AgentlogError
from agentlog.schemas.events import (
    LockDenied,
    LockGranted,
    LockQueued,
    LockRequested,
    new_envelope,
)
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import LOCKS, ensure_topics

from .commands import LockCommand, release_event
from .errors import InvalidLockRequestError, LockDeniedError, LockError, LockTimeoutError
from .evolve import evolve
from .lease import Lease
from .log import read_partitions
from .state import MANAGER_SOURCE, MAX_TTL_MS, Holder, LockState
from .tail import DecisionTail, Watch

logger = logging.getLogger(__name__)


class LockClient:
    """Takes and releases leases through the lock manager.

    Use as ``async with LockClient(settings) as locks:``; :meth:`start` and
    :meth:`stop` are idempotent. Leases still held at :meth:`stop` are released.

    Args:
        settings: the broker and the topic prefix.
        requester: who asks (recorded in every request); default ``<host>:<pid>``.
        source: ``envelope.source`` of the commands this client sends.
        decision_timeout: seconds beyond a request's ``wait`` to wait for the
            manager's decision before giving up (``LockTimeoutError``).
        release_timeout: how long a release waits for the manager's confirmation.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        requester: str | None = None,
        source: str = "lock-client",
        decision_timeout: float = 30.0,
        release_timeout: float = 5.0,
    ) -> None:
        if source == MANAGER_SOURCE:
            raise InvalidLockRequestError(
                f"source={source!r} is reserved for lock-manager decisions; use e.g. 'lock-client'"
            )
        self.settings = settings
        self.requester = requester or f"{socket.gethostname()}:{os.getpid()}"
        self.source = source
        self.decision_timeout = decision_timeout
        self.release_timeout = release_timeout
        self.topic = settings.topic(LOCKS.name)
        self._producer: EventProducer | None = None
        self._tail: DecisionTail | None = None
        self._partitions = 0
        self._leases: set[Lease] = set()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Create the locks topic if missing, connect and start reading decisions; idempotent."""
        if self._producer is not None:
            return
        await ensure_topics(self.settings, [LOCKS])
        async with contextlib.AsyncExitStack() as stack:
            producer = await stack.enter_async_context(
                EventProducer(self.settings, client_id=f"{self.source}-producer")
            )
            self._partitions = len(await producer.partitions_for(self.topic))
            tail = DecisionTail(
                self.settings, self.topic, self._partitions, client_id=f"{self.source}-tail"
            )
            await tail.start()
            stack.push_async_callback(tail.stop)
            self._producer, self._tail = producer, tail
            stack.pop_all()

    async def stop(self) -> None:
        """Release held leases, stop reading and disconnect; idempotent."""
        for lease in list(self._leases):
            await lease.release()
        tail, self._tail = self._tail, None
        if tail is not None:
            await tail.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> LockClient:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        failure = self._tail.failure if self._tail is not None else None
        await self.stop()
        if et is None and failure is not None:
            raise LockError(
                f"the lock client stopped reading {self.topic}: {type(failure).__name__}: "
                f"{failure}; check the broker"
            ) from failure

    # -- locks -----------------------------------------------------------------------

    def lock(
        self, resource: str, *, ttl: float = 30.0, wait: float = 30.0, renew: bool = True
    ) -> LockContext:
        """``async with client.lock(resource, ttl=…, wait=…) as lease:`` — hold it for the block.

        The lease is renewed every ``ttl / 3`` while the block runs and
        released when it ends. If the lease was lost meanwhile (``lease.lost``)
        and the block raised nothing, :class:`LockLostError` is raised at the end.

        Args:
            resource: what to lock, e.g. ``"repo:org/name"``.
            ttl: lease length in seconds (renewed while held).
            wait: how long to wait in the queue; 0 means fail at once if held.
            renew: renew in the background (False: the lease ends after ``ttl``).

        Raises:
            LockDeniedError: the manager refused (busy with ``wait=0``, wait timeout).
            LockTimeoutError: no decision arrived (is the lock manager running?).
            LockLostError: at the end of the block, if the lease was lost.
        """
        return LockContext(self, resource, ttl=ttl, wait=wait, renew=renew)

    async def acquire(
        self, resource: str, *, ttl: float = 30.0, wait: float = 30.0, renew: bool = True
    ) -> Lease:
        """Wait for a lease on ``resource``; release it with :meth:`Lease.release`.

        See :meth:`lock` for the arguments and errors. Cancelling the wait
        withdraws the request.
        """
        ttl_ms, wait_ms = _check_request(resource, ttl, wait)
        _, tail = self._require()
        request_id = uuid.uuid4().hex
        watch = tail.watch(request_id)
        request = LockRequested(
            envelope=new_envelope("LockRequested", resource, source=self.source),
            resource=resource,
            request_id=request_id,
            requester=self.requester,
            ttl_ms=ttl_ms,
            wait_timeout_ms=wait_ms,
        )
        try:
            try:
                await self._send(request)
            except asyncio.CancelledError:
                await self._withdraw(request, "cancelled")  # it may have been appended already
                raise
            except (KafkaError, OSError) as e:
                raise LockError(
                    f"sending the lock request for {resource!r} to {self.topic} failed: "
                    f"{type(e).__name__}: {e}; check the broker (AGENTLOG_KAFKA_BOOTSTRAP)"
                ) from e
            granted = await self._decision(watch, request, wait + self.decision_timeout)
        except BaseException:
            tail.unwatch(request_id)
            raise
        lease = Lease(
            granted,
            watch,
            self._send,
            ttl_ms=ttl_ms,
            renew=renew,
            source=self.source,
            release_timeout=self.release_timeout,
            on_end=self._ended,
        )
        self._leases.add(lease)
        logger.debug("lease on %s granted: token %s", resource, lease.token)
        return lease

    async def _decision(self, watch: Watch, request: LockRequested, seconds: float) -> LockGranted:
        try:
            async with asyncio.timeout(seconds):
                decision = await _first_answer(watch, request)
        except TimeoutError:
            await self._withdraw(request, f"no decision within {seconds} s")
            raise LockTimeoutError(
                request.resource, request.request_id, seconds, self.topic
            ) from None
        except asyncio.CancelledError:
            await self._withdraw(request, "cancelled")
            raise
        except Exception as e:
            raise LockError(
                f"waiting for the lock on {request.resource!r} failed: {type(e).__name__}: {e}"
            ) from e
        if isinstance(decision, LockDenied):
            raise LockDeniedError(request.resource, request.request_id, decision.reason)
        return decision

    async def _withdraw(self, request: LockRequested, reason: str) -> None:
        """Leave the queue (or release a grant that arrives later); best effort."""
        command = release_event(
            request.resource,
            request.request_id,
            source=self.source,
            reason=f"withdrawn: {reason}",
            causation_id=request.envelope.event_id,
            correlation_id=request.envelope.correlation_id,
        )
        try:
            await asyncio.shield(self._send(command))
        except (KafkaError, OSError, AgentlogError) as e:
            logger.warning("withdrawing lock request %s failed: %s", request.request_id, e)

    async def _send(self, event: LockRequested | LockCommand) -> None:
        producer, _ = self._require()
        encoded = producer.codec.encode(event)
        future = await producer.send_raw(
            self.topic,
            encoded,
            key=event.resource.encode("utf-8"),
            partition=self.home(event.resource),
        )
        await future

    def _ended(self, lease: Lease) -> None:
        self._leases.discard(lease)
        if self._tail is not None:
            self._tail.unwatch(lease.request_id)

    # -- reads -----------------------------------------------------------------------

    def home(self, resource: str) -> int:
        """The partition of the locks topic ``resource`` lives on."""
        self._require()
        return partition_for(resource, self._partitions)

    async def state(self, resource: str) -> LockState | None:
        """The resource's state folded from its partition (None: never requested).

        Reads the partition from offset 0: fine for tools and tests; dashboards
        should use the locks projection.
        """
        self._require()
        state: LockState | None = None
        async for _, _, event in read_partitions(
            self.settings, self.topic, [self.home(resource)], client_id=f"{self.source}-reader"
        ):
            if getattr(event, "resource", None) == resource:
                state = evolve(state, event)
        return state

    async def holder(self, resource: str) -> Holder | None:
        """The current holder by the manager's last decision (None: free)."""
        state = await self.state(resource)
        return state.holder if state is not None else None

    async def is_locked(self, resource: str) -> bool:
        """Whether the manager's last decision left ``resource`` with a holder.

        A lease that ran out counts as held until the manager records its
        expiry (within its timer resolution while it runs).
        """
        return await self.holder(resource) is not None

    def _require(self) -> tuple[EventProducer, DecisionTail]:
        if self._producer is None or self._tail is None:
            raise RuntimeError("the LockClient is not started; use `async with` or await start()")
        return self._producer, self._tail


class LockContext:
    """``async with client.lock(...) as lease``: acquire, hold, release.

    See :meth:`LockClient.lock`.
    """

    def __init__(
        self, client: LockClient, resource: str, *, ttl: float, wait: float, renew: bool
    ) -> None:
        self._client = client
        self._resource = resource
        self._ttl = ttl
        self._wait = wait
        self._renew = renew
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        self._lease = await self._client.acquire(
            self._resource, ttl=self._ttl, wait=self._wait, renew=self._renew
        )
        return self._lease

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        await lease.release()
        if et is None and lease.lost.is_set():
            raise lease.lost_error()


async def _first_answer(watch: Watch, request: LockRequested) -> LockGranted | LockDenied:
    """The grant or denial of a request (``LockQueued`` only tells the position)."""
    while True:
        decision = await watch.get()
        if isinstance(decision, LockGranted | LockDenied):
            return decision
        if isinstance(decision, LockQueued):
            logger.debug("lock on %s: queued at position %s", request.resource, decision.position)


def _check_request(resource: str, ttl: float, wait: float) -> tuple[int, int]:
    if not isinstance(resource, str) or not resource.strip():
        raise InvalidLockRequestError(
            f"resource={resource!r}: name what to lock, e.g. 'repo:org/name'"
        )
    ttl_ms = int(ttl * 1000)
    if not 0 < ttl_ms <= MAX_TTL_MS:
        raise InvalidLockRequestError(
            f"ttl={ttl!r}: use more than 0.001 and at most {MAX_TTL_MS // 1000} seconds "
            "(the lease is renewed while held)"
        )
    if wait < 0:
        raise InvalidLockRequestError(
            f"wait={wait!r}: use 0 (fail at once if held) or more seconds"
        )
    return ttl_ms, int(wait * 1000)
