"""``decide``: the lock manager's pure decision function. No I/O, no clock, never raises.

``handle(state, input, now)`` returns the decisions an input leads to and the
state after them (equal to folding the input and its decisions with
:func:`~agentlog.agents.locks.evolve.evolve`). Rules, per resource:

* **Time first.** Before any input, everything due at ``now`` happens, in
  order of due time: a waiter whose wait deadline passed is denied
  (``LockDenied``, reason ``wait timeout``), a lease that ran out expires
  (``LockExpired``) and the next waiter is granted. So a decision never
  depends on whether a timer fired before the input arrived.
* ``LockRequested``: a request id already decided (holding, queued or
  recently ended) decides nothing; an invalid request is denied; a free lock
  is granted (``LockGranted``, token ``last_token + 1``, lease ``now + ttl``);
  a held lock with ``wait_timeout_ms == 0`` is denied; otherwise the request
  is queued (``LockQueued``, position from 1).
* :class:`~agentlog.agents.locks.commands.ReleaseRequest`: from the holder
  (same request id, token 0 or its token), ``LockReleased`` and the next waiter
  is granted; from a waiter, ``LockDenied`` (reason ``cancelled``); otherwise
  (a stale holder, a repeat) nothing.
* :class:`~agentlog.agents.locks.commands.RenewRequest`: from the holder of
  a lease still valid at ``now``, ``LockRenewed`` until ``now + ttl``; otherwise nothing.
* :class:`~agentlog.agents.locks.commands.LockTimer`: only the time rule.

Decision ids are ``derive_event_id(<input event id>, <index>)``; an input
whose event id already caused recorded decisions (``seen_inputs``) decides
nothing, so redelivery after a crash is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agentlog.schemas.events import (
    Envelope,
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockRenewed,
    LockRequested,
    derive_event_id,
    new_envelope,
)

from .commands import LockDecision, LockInput, LockTimer, ReleaseRequest, RenewRequest
from .evolve import evolve
from .state import MANAGER_SOURCE, MAX_TTL_MS, Holder, LockState, Waiter

#: ``LockDenied.reason`` prefixes, stable for clients and dashboards.
REASON_BUSY = "busy"
REASON_WAIT_TIMEOUT = "wait timeout"
REASON_CANCELLED = "cancelled"
REASON_INVALID = "invalid request"
REASON_INTERNAL = "internal error"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one input.

    Attributes:
        state: the state after the input and ``events`` (their fold).
        events: the decisions to append, in order, in one record batch.
    """

    state: LockState | None
    events: tuple[LockDecision, ...]


def decide(state: LockState | None, input: LockInput, now: datetime) -> list[LockDecision]:
    """The decisions ``input`` leads to, given ``state``. See :func:`handle`."""
    return list(handle(state, input, now).events)


def handle(state: LockState | None, input: LockInput, now: datetime) -> Decision:
    """Decide on ``input`` at ``now`` (the lock manager's clock, aware; naive means UTC).

    ``state`` may or may not have folded ``input`` already (recovery folds
    requests that are still undecided): both give the same decisions.
    Never raises: an unexpected error denies a request (``internal error``)
    and decides nothing for other inputs.
    """
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if isinstance(input, LockTimer):
        cause_id = input.event_id
    else:
        cause_id = input.envelope.event_id
        if state is not None and cause_id in state.seen_inputs:
            return Decision(state, ())
    try:
        batch = _Batch(state or LockState(resource=input.resource), cause_id, now)
        if isinstance(input, LockRequested):
            batch.state = _fold(batch.state, input)
        _advance(batch)
        match input:
            case LockRequested():
                _request(batch, input)
            case ReleaseRequest():
                _release(batch, input)
            case RenewRequest():
                _renew(batch, input)
    except Exception as exc:  # noqa: BLE001 - the core never raises
        return _internal_error(state, input, cause_id, now, exc)
    if not batch.events:
        return Decision(state, ())
    return Decision(batch.state, tuple(batch.events))


@dataclass(slots=True)
class _Batch:
    """The decisions of one input so far, folded as they are made."""

    state: LockState
    cause_id: str
    now: datetime
    events: list[LockDecision] = field(default_factory=list)

    @property
    def resource(self) -> str:
        return self.state.resource

    def envelope(self, type_name: str, correlation_id: str, traceparent: str | None) -> Envelope:
        """The envelope of the next decision: id derived from the input and its index."""
        return new_envelope(
            type_name,
            self.state.resource,
            source=MANAGER_SOURCE,
            correlation_id=correlation_id,
            causation_id=self.cause_id,
            event_id=derive_event_id(self.cause_id, len(self.events)),
            traceparent=traceparent,
            occurred_at=self.now,
        )

    def emit(self, event: LockDecision) -> None:
        self.events.append(event)
        self.state = _fold(self.state, event)


def _fold(state: LockState, event: LockRequested | LockDecision) -> LockState:
    after = evolve(state, event)
    assert after is not None  # evolve of a resource's own event never forgets it
    return after


# -- the rules --------------------------------------------------------------------------


def _advance(batch: _Batch) -> None:
    """Everything due at ``now``, earliest first (waits before leases at equal times)."""
    while True:
        state = batch.state
        due: list[tuple[datetime, int, str]] = [
            (w.deadline, 0, w.request_id) for w in state.queue if w.deadline <= batch.now
        ]
        holder = state.holder
        if holder is not None and holder.expires_at <= batch.now:
            due.append((holder.expires_at, 1, holder.request_id))
        if not due:
            return
        _, kind, request_id = min(due)
        if kind == 0:
            waiter = state.waiter(request_id)
            assert waiter is not None
            _deny(batch, waiter, f"{REASON_WAIT_TIMEOUT}: still queued at {_iso(waiter.deadline)}")
        else:
            assert holder is not None
            _expire(batch, holder)


def _request(batch: _Batch, request: LockRequested) -> None:
    state = batch.state
    if state.knows(request.request_id):
        return
    problem = _invalid(request)
    if problem is not None:
        _deny_request(batch, request, f"{REASON_INVALID}: {problem}")
        return
    if state.holder is None:
        _grant_pending(batch, request)
    elif request.wait_timeout_ms == 0:
        holder = state.holder
        _deny_request(
            batch,
            request,
            f"{REASON_BUSY}: held by {holder.requester} (token {holder.token}) until "
            f"{_iso(holder.expires_at)} and wait_timeout_ms is 0",
        )
    else:
        envelope = batch.envelope(
            "LockQueued", request.envelope.correlation_id, request.envelope.traceparent
        )
        batch.emit(
            LockQueued(
                envelope=envelope,
                resource=batch.resource,
                request_id=request.request_id,
                requester=request.requester,
                position=len(state.queue) + 1,
            )
        )


def _release(batch: _Batch, command: ReleaseRequest) -> None:
    state = batch.state
    holder = state.holder
    if holder is not None and _matches(holder, command.request_id, command.fencing_token):
        envelope = batch.envelope("LockReleased", holder.correlation_id, holder.traceparent)
        batch.emit(
            LockReleased(
                envelope=envelope,
                resource=batch.resource,
                request_id=holder.request_id,
                fencing_token=holder.token,
            )
        )
        _grant_next(batch)
        return
    waiter = state.waiter(command.request_id)
    if waiter is not None:
        _deny(batch, waiter, f"{REASON_CANCELLED} by the requester")


def _renew(batch: _Batch, command: RenewRequest) -> None:
    holder = batch.state.holder
    if holder is None or not _matches(holder, command.request_id, command.fencing_token):
        return
    if not 0 < command.ttl_ms <= MAX_TTL_MS:
        return
    envelope = batch.envelope("LockRenewed", holder.correlation_id, holder.traceparent)
    batch.emit(
        LockRenewed(
            envelope=envelope,
            resource=batch.resource,
            request_id=holder.request_id,
            fencing_token=holder.token,
            lease_expires_at=batch.now + timedelta(milliseconds=command.ttl_ms),
        )
    )


# -- building blocks ---------------------------------------------------------------------


def _grant_pending(batch: _Batch, request: LockRequested) -> None:
    envelope = batch.envelope(
        "LockGranted", request.envelope.correlation_id, request.envelope.traceparent
    )
    batch.emit(
        LockGranted(
            envelope=envelope,
            resource=batch.resource,
            request_id=request.request_id,
            requester=request.requester,
            fencing_token=batch.state.last_token + 1,
            lease_expires_at=batch.now + timedelta(milliseconds=request.ttl_ms),
            workflow_id=request.workflow_id,
        )
    )


def _grant_next(batch: _Batch) -> None:
    state = batch.state
    if state.holder is not None or not state.queue:
        return
    waiter = state.queue[0]
    envelope = batch.envelope("LockGranted", waiter.correlation_id, waiter.traceparent)
    batch.emit(
        LockGranted(
            envelope=envelope,
            resource=batch.resource,
            request_id=waiter.request_id,
            requester=waiter.requester,
            fencing_token=state.last_token + 1,
            lease_expires_at=batch.now + timedelta(milliseconds=waiter.ttl_ms),
            workflow_id=waiter.workflow_id,
        )
    )


def _expire(batch: _Batch, holder: Holder) -> None:
    envelope = batch.envelope("LockExpired", holder.correlation_id, holder.traceparent)
    batch.emit(
        LockExpired(
            envelope=envelope,
            resource=batch.resource,
            request_id=holder.request_id,
            fencing_token=holder.token,
        )
    )
    _grant_next(batch)


def _deny(batch: _Batch, waiter: Waiter, reason: str) -> None:
    envelope = batch.envelope("LockDenied", waiter.correlation_id, waiter.traceparent)
    batch.emit(
        LockDenied(
            envelope=envelope,
            resource=batch.resource,
            request_id=waiter.request_id,
            requester=waiter.requester,
            reason=reason,
            workflow_id=waiter.workflow_id,
        )
    )


def _deny_request(batch: _Batch, request: LockRequested, reason: str) -> None:
    envelope = batch.envelope(
        "LockDenied", request.envelope.correlation_id, request.envelope.traceparent
    )
    batch.emit(
        LockDenied(
            envelope=envelope,
            resource=batch.resource,
            request_id=request.request_id,
            requester=request.requester,
            reason=reason,
            workflow_id=request.workflow_id,
        )
    )


def _matches(holder: Holder, request_id: str, token: int) -> bool:
    return holder.request_id == request_id and token in (0, holder.token)


def _invalid(request: LockRequested) -> str | None:
    if not request.resource.strip():
        return "resource is empty; name the resource, e.g. 'repo:org/name'"
    if not request.request_id:
        return "request_id is empty; use a unique id per request"
    if not 0 < request.ttl_ms <= MAX_TTL_MS:
        return f"ttl_ms={request.ttl_ms}; use 1..{MAX_TTL_MS} (renew longer leases)"
    if request.wait_timeout_ms < 0:
        return f"wait_timeout_ms={request.wait_timeout_ms}; use 0 (do not wait) or more"
    return None


def _internal_error(
    state: LockState | None, input: LockInput, cause_id: str, now: datetime, exc: Exception
) -> Decision:
    if not isinstance(input, LockRequested) or (
        state is not None and state.knows(input.request_id)
    ):
        return Decision(state, ())
    batch = _Batch(state or LockState(resource=input.resource), cause_id, now)
    try:
        batch.state = _fold(batch.state, input)
        _deny_request(batch, input, f"{REASON_INTERNAL}: {type(exc).__name__}: {exc}")
    except Exception:  # noqa: BLE001 - the core never raises
        return Decision(state, ())
    return Decision(batch.state, tuple(batch.events))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
