"""``decide``: the orchestrator's pure decision function. No I/O, no clock, never raises.

``decide(state, input, registry=..., now=...)`` returns the journal events an
input leads to. The runner appends them to the journal (acknowledged), folds
them into its state with :func:`~agentlog.workflow.evolve.evolve` (or takes
:attr:`Decision.state` from :func:`handle`), then publishes a ``TaskRequested``
for each ``StepScheduled`` (:func:`~agentlog.workflow.tasks.task_for`), and only
then commits the input's offset.

Inputs already reflected in the state decide nothing, so redelivery is
harmless: a request for an existing workflow id, a response to an attempt that
is no longer running, a timer that is no longer pending, and any input whose
event id caused recorded decisions (``WorkflowState.seen_inputs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agentlog.schemas.events import (
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    CancelRequested,
    Envelope,
    JsonValue,
    LockAcquired,
    LockDenied,
    LockGranted,
    SignalReceived,
    SignalSent,
    StepCompleted,
    StepTimedOut,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowRejected,
    WorkflowRequested,
    WorkflowStarted,
)
from agentlog.workflow.batch import PENDING, SOURCE, Batch, JournalEvent
from agentlog.workflow.errors import SpecError, UnknownDefinitionError
from agentlog.workflow.parse import json_problem
from agentlog.workflow.registry import WorkflowRegistry
from agentlog.workflow.schedule import advance, fail_attempt, fail_workflow, schedule_attempt
from agentlog.workflow.spec import WorkflowSpec
from agentlog.workflow.state import TaskState, TaskStatus, WorkflowState
from agentlog.workflow.steplocks import LOCK_DECISION_GRACE_MS, waiting_for
from agentlog.workflow.timers import TimerFired, TimerKind, timers
from agentlog.workflow.validate import missing_input

#: ``error_kind`` of an attempt whose lock the lock manager denied (retryable).
LOCK_DENIED = "lock_denied"
#: ``error_kind`` of an attempt that got no lock decision in time (retryable).
LOCK_TIMEOUT = "lock_timeout"

Input = (
    WorkflowRequested
    | CancelRequested
    | SignalSent
    | TaskCompleted
    | TaskFailed
    | TaskProgress
    | LockGranted
    | LockDenied
    | TimerFired
)
"""What ``decide`` takes: requests, agent responses, lock decisions and due timers."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one input.

    Attributes:
        state: the state after ``events`` (equal to folding them with ``evolve``).
        events: the journal events to append, in order.
    """

    state: WorkflowState | None
    events: tuple[JournalEvent, ...]


def decide(
    state: WorkflowState | None,
    input: Input,
    *,
    registry: WorkflowRegistry,
    now: datetime,
    idempotency_keys: Mapping[str, str] | None = None,
) -> list[JournalEvent]:
    """The journal events ``input`` leads to, given ``state``. See :func:`handle`."""
    result = handle(state, input, registry=registry, now=now, idempotency_keys=idempotency_keys)
    return list(result.events)


def handle(
    state: WorkflowState | None,
    input: Input,
    *,
    registry: WorkflowRegistry,
    now: datetime,
    idempotency_keys: Mapping[str, str] | None = None,
) -> Decision:
    """Decide on ``input`` and return the events with the state they lead to.

    Never raises: an unexpected error becomes ``WorkflowRejected`` (for a
    request) or ``WorkflowFailed`` with ``error_kind="internal_error"``.

    Args:
        state: the workflow's state (None before its first journal event).
        input: a request, an agent response, or a due timer of this workflow.
        registry: the workflow definitions requests may name.
        now: the decision time (aware; naive means UTC): every decision's
            ``occurred_at`` and the base of deadlines and retry times. Replays
            pass the recorded ``occurred_at`` of the first decision.
        idempotency_keys: idempotency key -> workflow id of the workflows this
            partition started; a request reusing a key for another workflow id is
            rejected as a duplicate. Keys are only compared within a partition.
    """
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    cause = _cause(state, input)
    if cause is None or (state is not None and cause.event_id in state.seen_inputs):
        return Decision(state, ())
    batch = Batch(state, cause, now)
    try:
        _dispatch(batch, input, registry, idempotency_keys or {})
    except Exception as exc:  # noqa: BLE001 - the core never raises; a bug fails the workflow
        return _internal_error(state, input, cause, now, exc)
    return Decision(batch.state, tuple(batch.events))


def _cause(state: WorkflowState | None, input: Input) -> Envelope | None:
    if not isinstance(input, TimerFired):
        return input.envelope
    if state is None:
        return None
    return Envelope(
        event_id=input.event_id,
        type="TimerFired",
        occurred_at=input.due_at,
        key=input.workflow_id,
        correlation_id=state.correlation_id,
        traceparent=state.traceparent,
        source=SOURCE,
    )


def _dispatch(
    batch: Batch,
    input: Input,
    registry: WorkflowRegistry,
    keys: Mapping[str, str],
) -> None:
    if isinstance(input, WorkflowRequested):
        _request(batch, input, registry, keys)
        return
    state = batch.running()
    if state is None or input.workflow_id != state.workflow_id:
        return
    match input:
        case CancelRequested():
            reason = input.reason or "cancel requested"
            batch.emit(
                WorkflowCancelled(envelope=PENDING, workflow_id=state.workflow_id, reason=reason)
            )
        case SignalSent():
            _signal(batch, state, input)
        case TaskCompleted():
            _task_completed(batch, state, input)
        case TaskFailed():
            _task_failed(batch, state, input)
        case TimerFired():
            _timer(batch, state, input)
        case TaskProgress():
            pass  # progress is for projections and live tails; it decides nothing
        case LockGranted():
            _lock_granted(batch, state, input)
        case LockDenied():
            _lock_denied(batch, state, input)


def _request(
    batch: Batch, request: WorkflowRequested, registry: WorkflowRegistry, keys: Mapping[str, str]
) -> None:
    if batch.state is not None:
        return  # this workflow id already started (or was rejected): a duplicate
    spec, reason = _resolve(request, registry, keys)
    if spec is None:
        batch.emit(
            WorkflowRejected(
                envelope=PENDING,
                workflow_id=request.workflow_id,
                reason=reason,
                request_event_id=request.envelope.event_id,
                request=_request_json(request),
            )
        )
        return
    batch.emit(
        WorkflowStarted(
            envelope=PENDING,
            workflow_id=request.workflow_id,
            definition=spec.name,
            version=spec.version,
            spec=spec.to_json(),
            input=request.input,
            priority=request.priority if request.priority != PRIORITY_DEFAULT else spec.priority,
            request_event_id=request.envelope.event_id,
            idempotency_key=request.idempotency_key,
            labels=dict(request.labels),
        )
    )
    advance(batch)


def _resolve(
    request: WorkflowRequested, registry: WorkflowRegistry, keys: Mapping[str, str]
) -> tuple[WorkflowSpec | None, str]:
    """The spec to run, or None and why the request is rejected."""
    if not request.workflow_id:
        return None, "workflow_id is empty; give every workflow a unique id"
    claimed = keys.get(request.idempotency_key) if request.idempotency_key else None
    if claimed is not None and claimed != request.workflow_id:
        return None, (
            f"duplicate request: idempotency key {request.idempotency_key!r} "
            f"already started workflow {claimed!r}"
        )
    if not PRIORITY_MIN <= request.priority <= PRIORITY_MAX:
        return None, f"priority {request.priority} is out of range; use 1 (lowest) to 5"
    spec, reason = _spec_of(request, registry)
    if spec is None:
        return None, reason
    spec = registry.started(spec)
    problem = json_problem(request.input, "input")
    if problem:
        return None, f"invalid input: {problem}"
    missing = missing_input(spec.required_input, request.input)
    if missing:
        return None, (
            f"invalid input: workflow {spec.name!r} v{spec.version} requires "
            f"{', '.join(spec.required_input)}; missing or null: {', '.join(missing)}"
        )
    return spec, ""


def _spec_of(
    request: WorkflowRequested, registry: WorkflowRegistry
) -> tuple[WorkflowSpec | None, str]:
    if request.spec is not None:
        try:
            spec = WorkflowSpec.from_json(request.spec)
        except SpecError as e:
            return None, str(e)
        if request.definition is not None and request.definition != spec.name:
            return None, f"definition {request.definition!r} differs from the spec's {spec.name!r}"
        if request.version is not None and request.version != spec.version:
            return None, f"version {request.version} differs from the spec's {spec.version}"
        return spec, ""
    if request.definition is None:
        return None, "the request names no definition and carries no spec; set one of them"
    found = registry.find(request.definition, request.version)
    if found is None:
        known = registry.versions(request.definition)
        return None, str(UnknownDefinitionError(request.definition, request.version, known))
    return found, ""


def _request_json(request: WorkflowRequested) -> JsonValue:
    return {
        "definition": request.definition,
        "version": request.version,
        "spec": request.spec,
        "input": request.input,
        "priority": request.priority,
        "idempotency_key": request.idempotency_key,
        "labels": dict(request.labels),
    }


def _signal(batch: Batch, state: WorkflowState, signal: SignalSent) -> None:
    assert state.plan is not None
    batch.emit(
        SignalReceived(
            envelope=PENDING,
            workflow_id=state.workflow_id,
            signal=signal.signal,
            payload=signal.payload,
        )
    )
    for name in state.plan.order:
        if state.plan.steps[name].signal != signal.signal:
            continue
        waiting = [t for t in state.steps[name].tasks if t.status is TaskStatus.RUNNING]
        if waiting:
            task = waiting[0]
            batch.emit(
                StepCompleted(
                    envelope=PENDING,
                    workflow_id=state.workflow_id,
                    step=name,
                    task_id=task.task_id,
                    attempt=task.attempt,
                    output=signal.payload,
                )
            )
            break
    advance(batch)


def _live_task(state: WorkflowState, response: TaskCompleted | TaskFailed) -> TaskState | None:
    """The running agent attempt a response answers; None for stale or foreign responses."""
    step = state.steps.get(response.step)
    task = step.task(response.task_id) if step is not None else None
    if task is None or task.status is not TaskStatus.RUNNING or task.is_signal_wait:
        return None
    return task if task.attempt == response.attempt else None


def _task_completed(batch: Batch, state: WorkflowState, response: TaskCompleted) -> None:
    task = _live_task(state, response)
    if task is None:
        return
    batch.emit(
        StepCompleted(
            envelope=PENDING,
            workflow_id=state.workflow_id,
            step=response.step,
            task_id=task.task_id,
            attempt=task.attempt,
            output=response.output,
        )
    )
    advance(batch)


def _task_failed(batch: Batch, state: WorkflowState, response: TaskFailed) -> None:
    task = _live_task(state, response)
    if task is None:
        return
    fail_attempt(
        batch,
        response.step,
        task,
        error_kind=response.error_kind,
        message=response.message,
        retryable=response.retryable,
    )
    advance(batch)


def _lock_granted(batch: Batch, state: WorkflowState, grant: LockGranted) -> None:
    found = waiting_for(state, grant.request_id)
    if found is None:
        return  # a duplicate, or the attempt ended (its release is on the way)
    name, task, lock = found
    batch.emit(
        LockAcquired(
            envelope=PENDING,
            workflow_id=state.workflow_id,
            step=name,
            task_id=task.task_id,
            resource=lock.resource,
            request_id=lock.request_id,
            fencing_token=grant.fencing_token,
            lease_expires_at=grant.lease_expires_at,
        )
    )


def _lock_denied(batch: Batch, state: WorkflowState, denial: LockDenied) -> None:
    found = waiting_for(state, denial.request_id)
    if found is None:
        return
    name, task, lock = found
    message = f"lock on {lock.resource!r} denied: {denial.reason}"
    fail_attempt(batch, name, task, error_kind=LOCK_DENIED, message=message, retryable=True)
    advance(batch)


def _timer(batch: Batch, state: WorkflowState, fired: TimerFired) -> None:
    timer = next((t for t in timers(state) if t.fired.timer_id == fired.timer_id), None)
    if timer is None or timer.fired.due_at > batch.now:
        return  # answered meanwhile, or not due yet: the runner asks again later
    if timer.kind is TimerKind.WORKFLOW_TIMEOUT:
        assert state.spec is not None
        message = f"workflow ran longer than its timeout_ms={state.spec.timeout_ms}"
        fail_workflow(batch, None, "timeout", message)
        return
    assert timer.step is not None
    assert timer.task_id is not None
    task = state.steps[timer.step].task(timer.task_id)
    assert task is not None
    if timer.kind is TimerKind.LOCK_WAIT:
        lock = task.awaiting_lock
        assert lock is not None
        message = (
            f"no decision on the lock on {lock.resource!r} (request {lock.request_id}) within "
            f"its wait_ms={lock.awaited.wait_timeout_ms} plus {LOCK_DECISION_GRACE_MS} ms: "
            "is a lock manager running (agentlog locks run)?"
        )
        fail_attempt(
            batch, timer.step, task, error_kind=LOCK_TIMEOUT, message=message, retryable=True
        )
    elif timer.kind is TimerKind.RETRY:
        schedule_attempt(
            batch,
            state,
            timer.step,
            item=task.item,
            attempt=task.attempt + 1,
            value=task.scheduled.input,
        )
    else:
        assert task.deadline is not None
        batch.emit(
            StepTimedOut(
                envelope=PENDING,
                workflow_id=state.workflow_id,
                step=timer.step,
                task_id=task.task_id,
                attempt=task.attempt,
                deadline=task.deadline,
            )
        )
        message = f"attempt {task.attempt} passed its deadline {task.deadline.isoformat()}"
        fail_attempt(
            batch,
            timer.step,
            task,
            error_kind="timeout",
            message=message,
            retryable=True,
            record_failure=False,
        )
    advance(batch)


def _internal_error(
    state: WorkflowState | None,
    input: Input,
    cause: Envelope,
    now: datetime,
    exc: Exception,
) -> Decision:
    message = f"internal error deciding on {type(input).__name__}: {type(exc).__name__}: {exc}"
    batch = Batch(state, cause, now)
    try:
        if state is None and isinstance(input, WorkflowRequested):
            batch.emit(
                WorkflowRejected(
                    envelope=PENDING,
                    workflow_id=input.workflow_id,
                    reason=message,
                    request_event_id=input.envelope.event_id,
                    request=_request_json(input),
                )
            )
        elif batch.running() is not None and state is not None:
            batch.emit(
                WorkflowFailed(
                    envelope=PENDING,
                    workflow_id=state.workflow_id,
                    error_kind="internal_error",
                    message=message,
                )
            )
    except Exception:  # noqa: BLE001 - last resort: decide nothing rather than raise
        return Decision(state, ())
    return Decision(batch.state, tuple(batch.events))
