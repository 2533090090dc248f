"""Locks: the current holder, token and wait queue per resource, every request, and rollups.

All ``Lock*`` events of a resource are on one partition of ``agentlog.locks``
(the resource is the key), written by the lock manager in its decision order,
so these folds apply events in order. History is the archive's events of the
resource (``GET /locks/{resource}``), commands included.

Only requests (``LockRequested``) and the lock manager's decisions are folded.
Holders' commands are not facts: ``LockReleaseRequested`` / ``LockRenewRequested``
are no :data:`LOCK_EVENT_TYPES` (archived and counted only), and the deprecated
interim encoding of the same commands (a ``LockReleased`` / ``LockRenewed`` from a
source other than the lock manager) is skipped by :func:`is_command`. The
manager's decision about a command follows on the same partition.

:func:`apply_lock` updates the batch's working rows in place; :func:`lock_after`
is its pure form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from agentlog.agents.locks.commands import is_decision
from agentlog.projections.folds.metrics import LockMinute, Rollups, add_buckets, one_hot
from agentlog.projections.records import micros, minute_of, to_json
from agentlog.schemas.events import (
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockRenewed,
    LockRequested,
)

LockEvent = (
    LockRequested | LockGranted | LockQueued | LockDenied | LockRenewed | LockReleased | LockExpired
)
#: The types the lock folds apply: requests and decisions (:func:`is_command` drops the
#: interim commands among them); the command types are not here.
LOCK_EVENT_TYPES = (
    LockRequested,
    LockGranted,
    LockQueued,
    LockDenied,
    LockRenewed,
    LockReleased,
    LockExpired,
)


@dataclass(frozen=True, slots=True)
class Waiter:
    """A request waiting in a resource's queue."""

    request_id: str
    requester: str
    position: int
    queued_at: datetime


@dataclass(slots=True, kw_only=True)
class LockRow:
    """One row of ``locks``; ``queue`` is kept as a tuple and stored as JSON."""

    resource: str
    status: str = "free"
    holder: str | None = None
    holder_request_id: str | None = None
    fencing_token: int | None = None
    lease_expires_at: datetime | None = None
    granted_at: datetime | None = None
    queue: tuple[Waiter, ...] = ()
    requests: int = 0
    grants: int = 0
    queued: int = 0
    denials: int = 0
    releases: int = 0
    expiries: int = 0
    last_event_at: datetime


@dataclass(slots=True, kw_only=True)
class LockRequestRow:
    """One row of ``lock_requests``: the life of one request."""

    request_id: str
    resource: str
    requester: str | None = None
    workflow_id: str | None = None
    status: str = "requested"
    ttl_ms: int | None = None
    wait_timeout_ms: int | None = None
    requested_at: datetime | None = None
    queued_at: datetime | None = None
    queue_position: int | None = None
    granted_at: datetime | None = None
    fencing_token: int | None = None
    lease_expires_at: datetime | None = None
    renewals: int = 0
    denied_at: datetime | None = None
    deny_reason: str | None = None
    released_at: datetime | None = None
    expired_at: datetime | None = None
    wait_ms: float | None = None
    last_event_at: datetime


def queue_json(queue: tuple[Waiter, ...]) -> str:
    """The ``locks.queue`` column."""
    return to_json(
        [
            {
                "request_id": w.request_id,
                "requester": w.requester,
                "position": w.position,
                "queued_at": w.queued_at.isoformat(),
            }
            for w in queue
        ]
    )


def queue_from_json(items: list[dict[str, object]]) -> tuple[Waiter, ...]:
    """The inverse of :func:`queue_json` (rows loaded back from the table)."""
    return tuple(
        Waiter(
            request_id=str(w["request_id"]),
            requester=str(w["requester"]),
            position=int(w["position"]),  # type: ignore[call-overload]
            queued_at=datetime.fromisoformat(str(w["queued_at"])),
        )
        for w in items
    )


def new_lock(event: LockEvent) -> LockRow:
    """The row of a resource no event has touched yet."""
    return LockRow(resource=event.resource, last_event_at=event.envelope.occurred_at)


def new_request(event: LockEvent) -> LockRequestRow:
    """The row of a request no event has touched yet."""
    return LockRequestRow(
        request_id=event.request_id,
        resource=event.resource,
        last_event_at=event.envelope.occurred_at,
    )


def lock_after(
    lock: LockRow | None, request: LockRequestRow | None, event: LockEvent
) -> tuple[LockRow, LockRequestRow, list[LockMinute]]:
    """The resource's row, the request's row and the rollup deltas after ``event``; pure."""
    lock = replace(lock) if lock is not None else new_lock(event)
    request = replace(request) if request is not None else new_request(event)
    rollups = Rollups()
    apply_lock(lock, request, event, rollups)
    return lock, request, rollups.sorted_locks()


def is_command(event: LockEvent) -> bool:
    """True for a holder's release or renew command in the deprecated interim encoding.

    Such a ``LockReleased`` / ``LockRenewed`` is not a fact to fold (see
    :func:`apply_lock`); the command events proper are no :data:`LockEvent`.
    """
    return not isinstance(event, LockRequested) and not is_decision(event)


def apply_lock(lock: LockRow, request: LockRequestRow, event: LockEvent, rollups: Rollups) -> None:
    """Fold a (new) event into the resource's and the request's rows in place.

    Only the lock manager's decisions and the requests themselves are facts: a
    ``LockReleased`` / ``LockRenewed`` from any other source is a holder's
    command in the deprecated interim encoding (``docs/locks.md``) and changes
    nothing here; the manager's decision about it follows on the same partition.
    """
    if is_command(event):
        return
    at = event.envelope.occurred_at
    lock.last_event_at = at
    request.last_event_at = at
    delta = rollups.lock(event.resource, minute_of(at))
    match event:
        case LockRequested():
            _requested(lock, request, event, at)
            delta.requested += 1
        case LockQueued():
            _queued(lock, request, event, at)
            delta.queued += 1
        case LockGranted():
            _granted(lock, request, event, at, delta)
        case LockDenied():
            lock.queue = _without(lock, event.request_id)
            lock.denials += 1
            request.requester = request.requester or event.requester
            request.status = "denied"
            request.denied_at = at
            request.deny_reason = event.reason
            delta.denied += 1
        case LockRenewed():
            if lock.holder_request_id == event.request_id:
                lock.lease_expires_at = event.lease_expires_at
            request.lease_expires_at = event.lease_expires_at
            request.renewals += 1
        case LockReleased():
            _free(lock, event.request_id)
            lock.releases += 1
            request.status = "released"
            request.released_at = at
            delta.released += 1
        case LockExpired():
            _free(lock, event.request_id)
            lock.expiries += 1
            request.status = "expired"
            request.expired_at = at
            delta.expired += 1


def _requested(lock: LockRow, request: LockRequestRow, event: LockRequested, at: datetime) -> None:
    lock.requests += 1
    request.requester = event.requester
    request.workflow_id = event.workflow_id
    request.ttl_ms = event.ttl_ms
    request.wait_timeout_ms = event.wait_timeout_ms
    request.requested_at = at
    request.status = "requested"


def _queued(lock: LockRow, request: LockRequestRow, event: LockQueued, at: datetime) -> None:
    waiter = Waiter(event.request_id, event.requester, event.position, at)
    lock.queue = (*_without(lock, event.request_id), waiter)
    lock.queued += 1
    request.requester = request.requester or event.requester
    request.status = "queued"
    request.queued_at = request.queued_at or at
    request.queue_position = event.position


def _granted(
    lock: LockRow, request: LockRequestRow, event: LockGranted, at: datetime, delta: LockMinute
) -> None:
    wait_ms = (at - request.requested_at).total_seconds() * 1000 if request.requested_at else None
    lock.status = "held"
    lock.holder = event.requester
    lock.holder_request_id = event.request_id
    lock.fencing_token = event.fencing_token
    lock.lease_expires_at = event.lease_expires_at
    lock.granted_at = at
    lock.queue = _without(lock, event.request_id)
    lock.grants += 1
    request.requester = request.requester or event.requester
    request.status = "granted"
    request.granted_at = at
    request.fencing_token = event.fencing_token
    request.lease_expires_at = event.lease_expires_at
    request.queue_position = None
    request.wait_ms = wait_ms
    delta.granted += 1
    if wait_ms is not None:
        delta.wait_us_sum += micros(wait_ms / 1000)
        delta.wait_buckets = add_buckets(delta.wait_buckets, one_hot(wait_ms))


def _without(lock: LockRow, request_id: str) -> tuple[Waiter, ...]:
    return tuple(w for w in lock.queue if w.request_id != request_id)


def _free(lock: LockRow, request_id: str) -> None:
    if lock.holder_request_id != request_id:
        return  # a stale release of an earlier lease
    lock.status = "free"
    lock.holder = None
    lock.holder_request_id = None
    lock.lease_expires_at = None
    lock.granted_at = None
