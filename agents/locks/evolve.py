"""``evolve``: fold one locks-topic event into a resource's state. Pure, no I/O.

Decisions (``source == "lock-manager"``) change ownership; ``LockRequested``
only records the request's parameters until a decision answers it (``pending``);
holders' commands change nothing. Folding is idempotent: a duplicate decision
(a producer retry, a re-append) is recognised by what it says and ignored — a
grant whose token is not above ``last_token``, a queue entry already queued, a
release of a lease that is not the current one — so a log with duplicates
folds to the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from agentlog.schemas.events import (
    Envelope,
    Event,
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockRenewed,
    LockRequested,
)

from .commands import is_decision
from .state import (
    FALLBACK_TTL_MS,
    FALLBACK_WAIT_MS,
    FINISHED_MAX,
    MAX_WAIT_MS,
    SEEN_INPUTS_MAX,
    Holder,
    LockState,
    Pending,
    Waiter,
)


def evolve(state: LockState | None, event: Event) -> LockState | None:
    """The state after ``event``; events of other resources and other types change nothing."""
    resource = getattr(event, "resource", None)
    if not isinstance(resource, str) or (state is not None and state.resource != resource):
        return state
    if isinstance(event, LockRequested):
        return _requested(state or LockState(resource=resource), event)
    if not is_decision(event):
        return state
    current = _record(state or LockState(resource=resource), event.envelope)
    match event:
        case LockGranted():
            return _granted(current, event)
        case LockQueued():
            return _queued(current, event)
        case LockDenied():
            return _finish(_drop_request(current, event.request_id), event.request_id)
        case LockRenewed():
            return _renewed(current, event)
        case LockReleased() | LockExpired():
            return _ended(current, event.request_id, event.fencing_token)
    return current


def fold(events: Iterable[Event], state: LockState | None = None) -> LockState | None:
    """Fold events of one resource, in log order."""
    for event in events:
        state = evolve(state, event)
    return state


def wait_deadline(queued_at: datetime, wait_timeout_ms: int) -> datetime:
    """When a request queued at ``queued_at`` stops waiting."""
    return queued_at + timedelta(milliseconds=min(max(wait_timeout_ms, 0), MAX_WAIT_MS))


def _requested(state: LockState, event: LockRequested) -> LockState:
    if state.knows(event.request_id) or state.pending_request(event.request_id) is not None:
        return state
    pending = Pending(
        request_id=event.request_id,
        requester=event.requester,
        ttl_ms=event.ttl_ms,
        wait_timeout_ms=event.wait_timeout_ms,
        correlation_id=event.envelope.correlation_id,
        traceparent=event.envelope.traceparent,
        workflow_id=event.workflow_id,
    )
    return replace(state, pending=(*state.pending, pending))


def _granted(state: LockState, event: LockGranted) -> LockState:
    if event.fencing_token <= state.last_token:
        return state  # a duplicate, or older than what we know
    request_id = event.request_id
    pending = state.pending_request(request_id)
    waiter = state.waiter(request_id)
    origin = waiter or pending
    granted_at = event.envelope.occurred_at
    holder = Holder(
        request_id=request_id,
        requester=event.requester,
        token=event.fencing_token,
        granted_at=granted_at,
        expires_at=event.lease_expires_at,
        ttl_ms=origin.ttl_ms
        if origin is not None
        else _ms(event.lease_expires_at - granted_at, FALLBACK_TTL_MS),
        correlation_id=origin.correlation_id if origin is not None else _corr(event.envelope),
        traceparent=origin.traceparent if origin is not None else event.envelope.traceparent,
        workflow_id=event.workflow_id or (origin.workflow_id if origin is not None else None),
    )
    state = _drop_request(state, request_id)
    return replace(state, holder=holder, last_token=event.fencing_token)


def _queued(state: LockState, event: LockQueued) -> LockState:
    request_id = event.request_id
    if state.knows(request_id):
        return state
    pending = state.pending_request(request_id)
    queued_at = event.envelope.occurred_at
    waiter = Waiter(
        request_id=request_id,
        requester=event.requester,
        ttl_ms=pending.ttl_ms if pending is not None else FALLBACK_TTL_MS,
        queued_at=queued_at,
        deadline=wait_deadline(
            queued_at, pending.wait_timeout_ms if pending is not None else FALLBACK_WAIT_MS
        ),
        correlation_id=pending.correlation_id if pending is not None else _corr(event.envelope),
        traceparent=pending.traceparent if pending is not None else event.envelope.traceparent,
        workflow_id=pending.workflow_id if pending is not None else None,
    )
    state = _drop_request(state, request_id)
    return replace(state, queue=(*state.queue, waiter))


def _renewed(state: LockState, event: LockRenewed) -> LockState:
    holder = state.holder
    if holder is None or not _same_lease(holder, event.request_id, event.fencing_token):
        return state
    return replace(state, holder=replace(holder, expires_at=event.lease_expires_at))


def _ended(state: LockState, request_id: str, token: int) -> LockState:
    holder = state.holder
    if holder is None or not _same_lease(holder, request_id, token):
        return state
    return _finish(replace(state, holder=None), request_id)


def _same_lease(holder: Holder, request_id: str, token: int) -> bool:
    return holder.request_id == request_id and holder.token == token


def _drop_request(state: LockState, request_id: str) -> LockState:
    pending = tuple(p for p in state.pending if p.request_id != request_id)
    queue = tuple(w for w in state.queue if w.request_id != request_id)
    if len(pending) == len(state.pending) and len(queue) == len(state.queue):
        return state
    return replace(state, pending=pending, queue=queue)


def _finish(state: LockState, request_id: str) -> LockState:
    if request_id in state.finished:
        return state
    return replace(state, finished=(*state.finished, request_id)[-FINISHED_MAX:])


def _record(state: LockState, envelope: Envelope) -> LockState:
    cause = envelope.causation_id
    if cause is None or cause in state.seen_inputs:
        return state
    return replace(state, seen_inputs=(*state.seen_inputs, cause)[-SEEN_INPUTS_MAX:])


def _ms(delta: timedelta, fallback: int) -> int:
    ms = int(delta.total_seconds() * 1000)
    return ms if ms > 0 else fallback


def _corr(envelope: Envelope) -> str:
    return envelope.correlation_id
