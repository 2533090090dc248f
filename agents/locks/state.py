"""The state of one lock resource, folded from the locks topic. Pure values, no I/O.

A resource has at most one holder (a granted lease with a fencing token), a
FIFO queue of waiters, and ``last_token``, the highest fencing token ever
granted: the next grant gets ``last_token + 1``. Because ``last_token`` is
folded from the log, tokens keep increasing across lock-manager restarts and
rebalances.

``pending`` holds requests that are in the log but not decided yet (a crash
between reading a request and appending its decision leaves some). It exists
because ``LockQueued`` does not carry the request's ``ttl_ms`` and
``wait_timeout_ms``: the fold takes them from the ``LockRequested`` (see
``docs/locks.md``, "Proposed schema additions").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: ``source`` of every lock-manager decision. Decisions are recognised by it, so
#: never make it configurable: a ``LockReleased``/``LockRenewed`` with any other
#: source is a holder's command in the deprecated interim encoding (see
#: :mod:`agentlog.agents.locks.commands`).
MANAGER_SOURCE = "lock-manager"

#: Longest lease one grant or renewal gives (7 days); longer asks are refused.
MAX_TTL_MS = 7 * 24 * 3600 * 1000
#: Longest wait in the queue (365 days); longer waits are shortened to it.
MAX_WAIT_MS = 365 * 24 * 3600 * 1000
#: Lease and wait of a waiter whose ``LockRequested`` is no longer in the log.
FALLBACK_TTL_MS = 60_000
FALLBACK_WAIT_MS = 60_000
#: How many ended request ids a resource remembers, so a re-sent request is ignored.
FINISHED_MAX = 256
#: How many input event ids a resource remembers, so a redelivered input is ignored.
SEEN_INPUTS_MAX = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """The current lease of a resource.

    Attributes:
        request_id: the request the lease was granted to.
        requester: who asked.
        token: the fencing token of the lease.
        granted_at: when the lock manager granted it (its clock).
        expires_at: when it ends unless renewed (the lock manager's clock).
        ttl_ms: the lease length the request asked for.
        correlation_id: of the request (the decisions about it carry it).
        traceparent: of the request, if any.
        workflow_id: the workflow whose step asked (decisions carry it), if any.
    """

    request_id: str
    requester: str
    token: int
    granted_at: datetime
    expires_at: datetime
    ttl_ms: int
    correlation_id: str
    traceparent: str | None = None
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiter:
    """A request queued behind the holder.

    Attributes:
        request_id: the request.
        requester: who asked.
        ttl_ms: the lease length it gets when granted.
        queued_at: when the lock manager queued it.
        deadline: when it is denied if still waiting (``queued_at + wait_timeout_ms``).
        correlation_id: of the request.
        traceparent: of the request, if any.
        workflow_id: the workflow whose step asked, if any.
    """

    request_id: str
    requester: str
    ttl_ms: int
    queued_at: datetime
    deadline: datetime
    correlation_id: str
    traceparent: str | None = None
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A ``LockRequested`` in the log that no decision answered yet."""

    request_id: str
    requester: str
    ttl_ms: int
    wait_timeout_ms: int
    correlation_id: str
    traceparent: str | None = None
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockState:
    """One resource: holder, FIFO queue, the last fencing token, and dedupe memory.

    Attributes:
        resource: the resource id (the partition key of the locks topic).
        holder: the current lease, or None when the lock is free.
        queue: waiters, first in first out. Invariant: not empty only while
            there is a holder.
        last_token: the highest fencing token granted so far (0: never granted).
        pending: requests in the log without a decision yet.
        finished: the last ``FINISHED_MAX`` request ids that ended (denied,
            released, expired); a request with one of these ids decides nothing.
        seen_inputs: the last ``SEEN_INPUTS_MAX`` input event ids that led to
            decisions; a redelivered input decides nothing.
    """

    resource: str
    holder: Holder | None = None
    queue: tuple[Waiter, ...] = ()
    last_token: int = 0
    pending: tuple[Pending, ...] = ()
    finished: tuple[str, ...] = ()
    seen_inputs: tuple[str, ...] = ()

    @property
    def locked(self) -> bool:
        """Whether the lock manager's last decision left a holder."""
        return self.holder is not None

    def waiter(self, request_id: str) -> Waiter | None:
        """The queued request with this id, if any."""
        return next((w for w in self.queue if w.request_id == request_id), None)

    def pending_request(self, request_id: str) -> Pending | None:
        """The undecided request with this id, if any."""
        return next((p for p in self.pending if p.request_id == request_id), None)

    def knows(self, request_id: str) -> bool:
        """Whether a request id is decided: holding, queued, or recently ended."""
        return (
            (self.holder is not None and self.holder.request_id == request_id)
            or self.waiter(request_id) is not None
            or request_id in self.finished
        )

    def position(self, request_id: str) -> int | None:
        """The queue position of a request (1 is next), or None if not queued."""
        for i, w in enumerate(self.queue, 1):
            if w.request_id == request_id:
                return i
        return None
