"""``evolve``: fold one journal event into a workflow's state. Pure, no I/O.

The journal holds facts decided by :func:`agentlog.workflow.decide.decide`;
``evolve`` applies them and decides nothing. Two kinds of facts are recognised
by their deterministic ids (:mod:`agentlog.workflow.ids`) rather than by
dedicated event types:

* a step-level ``StepCompleted`` with ``attempt`` 0 is a skip (``skip_id``) or
  the join of a fan-out (``join_id``);
* an event that starts run ``n + 1`` of a finished step (its first
  ``StepScheduled``, skip or join) means the loop back to that step repeated:
  every step of the loop body is reset, keeping its previous output.

Events already folded (same ``event_id``), events of other workflows and events
that do not fit the state (late, stale) leave the state unchanged, so folding a
journal with duplicates gives the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from agentlog.schemas.events import (
    JOURNAL_EVENT_TYPES,
    Envelope,
    Event,
    JsonValue,
    LockAcquired,
    LockAwaited,
    SignalReceived,
    StepCompleted,
    StepFailed,
    StepRetryScheduled,
    StepScheduled,
    StepTimedOut,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowRejected,
    WorkflowStarted,
    WorkflowSucceeded,
)
from agentlog.workflow.errors import JournalError, SpecError
from agentlog.workflow.graph import Plan
from agentlog.workflow.ids import join_id, skip_id, task_id
from agentlog.workflow.parse import spec_from_json
from agentlog.workflow.state import (
    BUFFERED_SIGNALS_MAX,
    RECENT_EVENTS_MAX,
    SEEN_INPUTS_MAX,
    BufferedSignal,
    Failure,
    StepLock,
    StepState,
    StepStatus,
    TaskState,
    TaskStatus,
    WorkflowState,
    WorkflowStatus,
)
from agentlog.workflow.values import replace


def evolve(state: WorkflowState | None, event: Event) -> WorkflowState | None:
    """The state after ``event``.

    Args:
        state: the state so far; None before the workflow's first journal event.
        event: any event; only journal events of this workflow change the state.

    Returns:
        The new state; None while ``state`` is None and ``event`` is not a
        ``WorkflowStarted`` or ``WorkflowRejected``.

    Raises:
        JournalError: a ``WorkflowStarted`` carries a spec this version cannot read.
    """
    if state is None:
        return _first(event)
    if getattr(event, "workflow_id", None) != state.workflow_id:
        return state
    envelope: Envelope = event.envelope
    if envelope.event_id in state.recent_events or not _is_journal(event):
        return state
    new = _apply(state, event)
    if new is state:
        return _record(state, envelope)
    _record_in_place(new, envelope)  # a copy made just now that nobody else holds
    return new


def fold(events: Iterable[Event], state: WorkflowState | None = None) -> WorkflowState | None:
    """Fold ``events`` in order, from ``state`` (a snapshot) or from nothing.

    Raises:
        JournalError: see :func:`evolve`.
    """
    for event in events:
        state = evolve(state, event)
    return state


def restart_loop(state: WorkflowState, back_to: str) -> WorkflowState | None:
    """The state with the loop that goes back to ``back_to`` reset for its next round.

    Every step of the loop body becomes pending with ``run + 1`` and keeps its
    previous output. None when no loop goes back to ``back_to``.
    """
    plan = state.plan
    loop = plan.loop_of.get(back_to) if plan is not None else None
    if plan is None or loop is None:
        return None
    steps = dict(state.steps)
    for name in plan.body[loop]:
        old = steps[name]
        steps[name] = StepState(name=name, run=old.run + 1, output=old.output)
    return replace(state, steps=MappingProxyType(steps))


_JOURNAL_TYPES = JOURNAL_EVENT_TYPES


def _is_journal(event: Event) -> bool:
    return isinstance(event, _JOURNAL_TYPES)


def _first(event: Event) -> WorkflowState | None:
    if isinstance(event, WorkflowStarted):
        return _record(_started(event), event.envelope)
    if isinstance(event, WorkflowRejected):
        rejected = WorkflowState(
            workflow_id=event.workflow_id,
            status=WorkflowStatus.REJECTED,
            definition="",
            version=0,
            spec=None,
            input=None,
            priority=0,
            request_event_id=event.request_event_id,
            correlation_id=event.envelope.correlation_id,
            traceparent=event.envelope.traceparent,
            ended_at=event.envelope.occurred_at,
            error=Failure(error_kind="rejected", message=event.reason),
        )
        return _record(rejected, event.envelope)
    return None


def _started(event: WorkflowStarted) -> WorkflowState:
    try:
        spec = spec_from_json(event.spec)
    except SpecError as e:
        raise JournalError(
            f"WorkflowStarted {event.envelope.event_id} of workflow {event.workflow_id!r} "
            f"carries a spec this agentlog cannot run: {e}"
        ) from e
    return WorkflowState(
        workflow_id=event.workflow_id,
        status=WorkflowStatus.RUNNING,
        definition=event.definition,
        version=event.version,
        spec=spec,
        input=event.input,
        priority=event.priority,
        request_event_id=event.request_event_id,
        idempotency_key=event.idempotency_key,
        labels=MappingProxyType(dict(event.labels)),
        correlation_id=event.envelope.correlation_id,
        traceparent=event.envelope.traceparent,
        started_at=event.envelope.occurred_at,
        steps=MappingProxyType({s.name: StepState(name=s.name) for s in spec.steps}),
        plan=Plan.of(spec),
    )


def _recorded(state: WorkflowState, envelope: Envelope) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``seen_inputs`` and ``recent_events`` once ``envelope``'s event is folded."""
    seen = state.seen_inputs
    cause = envelope.causation_id
    if cause is not None and (not seen or seen[-1] != cause):
        seen = (*seen, cause)[-SEEN_INPUTS_MAX:]
    return seen, (*state.recent_events, envelope.event_id)[-RECENT_EVENTS_MAX:]


def _record(state: WorkflowState, envelope: Envelope) -> WorkflowState:
    seen, recent = _recorded(state, envelope)
    return replace(
        state, seen_inputs=seen, recent_events=recent, journal_length=state.journal_length + 1
    )


def _record_in_place(state: WorkflowState, envelope: Envelope) -> None:
    """:func:`_record` on a state ``evolve`` has just copied: one copy per event, not two."""
    seen, recent = _recorded(state, envelope)
    _set_seen_inputs(state, seen)
    _set_recent_events(state, recent)
    _set_journal_length(state, state.journal_length + 1)


# the slots' own setters: the frozen class's __setattr__ refuses, on purpose, for everyone else
_set_seen_inputs = WorkflowState.__dict__["seen_inputs"].__set__
_set_recent_events = WorkflowState.__dict__["recent_events"].__set__
_set_journal_length = WorkflowState.__dict__["journal_length"].__set__


def _apply(state: WorkflowState, event: Event) -> WorkflowState:
    """``state`` itself when ``event`` changes nothing, else a copy made by this call.

    :func:`evolve` writes its bookkeeping into that copy; never return a state
    someone else may hold (the property tests check that no state changes later).
    """
    if not state.running or state.plan is None:
        return state
    match event:
        case StepScheduled():
            return _scheduled(state, state.plan, event)
        case StepCompleted():
            return _completed(state, state.plan, event)
        case StepFailed():
            return _step_failed(state, state.plan, event)
        case StepRetryScheduled():
            return _retry_scheduled(state, event)
        case StepTimedOut():
            return _timed_out(state, event)
        case LockAwaited() | LockAcquired():
            return _lock_event(state, event)
        case SignalReceived():
            return _signal(state, state.plan, event)
        case WorkflowSucceeded():
            return _ended(state, event.envelope, WorkflowStatus.SUCCEEDED, output=event.output)
        case WorkflowFailed():
            return _workflow_failed(state, event)
        case WorkflowCancelled():
            failure = Failure(error_kind="cancelled", message=event.reason)
            return _ended(state, event.envelope, WorkflowStatus.CANCELLED, error=failure)
        case _:
            # WorkflowStarted/Rejected again: a duplicate request's echo.
            return state


def _put(state: WorkflowState, step: StepState) -> WorkflowState:
    steps = dict(state.steps)
    steps[step.name] = step
    return replace(state, steps=MappingProxyType(steps))


def _put_task(step: StepState, task: TaskState) -> StepState:
    return replace(step, tasks=_tasks_with(step, task))


def _tasks_with(step: StepState, task: TaskState) -> tuple[TaskState, ...]:
    tasks = step.tasks
    if len(tasks) == 1 and tasks[0].item == task.item:
        return (task,)
    return tuple(task if t.item == task.item else t for t in tasks)


def _restart_if_next_run(
    state: WorkflowState, step: StepState, next_run_ids: tuple[str, ...], event_task_id: str
) -> WorkflowState | None:
    """The restarted state if the event starts the step's next run, else None."""
    if not step.status.done or event_task_id not in next_run_ids:
        return None
    return restart_loop(state, step.name)


def _scheduled(state: WorkflowState, plan: Plan, event: StepScheduled) -> WorkflowState:
    step = state.steps.get(event.step)
    if step is None:
        return state
    wf = state.workflow_id
    if step.status.done:
        first_of_next = (task_id(wf, step.name, step.run + 1, 0, 1),)
        restarted = _restart_if_next_run(state, step, first_of_next, event.task_id)
        if restarted is None:
            return state
        state, step = restarted, restarted.steps[event.step]
    if event.attempt == 1:
        item = len(step.tasks)
        if event.task_id != task_id(wf, step.name, step.run, item, 1):
            return state  # a duplicate, or a stale run's
        task = TaskState(item=item, status=TaskStatus.RUNNING, scheduled=event)
        tasks = (*step.tasks, task)
        return _put(state, replace(step, status=StepStatus.RUNNING, tasks=tasks, error=None))
    for task in step.tasks:
        expected = task_id(wf, step.name, step.run, task.item, event.attempt)
        if task.status is TaskStatus.RETRY_WAIT and event.task_id == expected:
            retried = TaskState(
                item=task.item, status=TaskStatus.RUNNING, scheduled=event, error=task.error
            )
            return _put(state, replace(_put_task(step, retried), status=StepStatus.RUNNING))
    return state


def _completed(state: WorkflowState, plan: Plan, event: StepCompleted) -> WorkflowState:
    step = state.steps.get(event.step)
    if step is None:
        return state
    if event.attempt == 0:
        return _step_level(state, event)
    task = step.task(event.task_id)
    if task is None or task.status is not TaskStatus.RUNNING:
        return state
    done = replace(task, status=TaskStatus.COMPLETED, output=event.output)
    if plan.steps[step.name].for_each is None:  # the step is done too: one copy of it
        tasks = _tasks_with(step, done)
        step = replace(
            step, status=StepStatus.COMPLETED, output=event.output, error=None, tasks=tasks
        )
    else:
        step = _put_task(step, done)
    state = _put(state, step)
    signal = plan.steps[step.name].signal
    return _consume_signal(state, signal) if signal is not None and task.is_signal_wait else state


def _step_level(state: WorkflowState, event: StepCompleted) -> WorkflowState:
    """A skip or a join (attempt 0), possibly starting the step's next run."""
    step = state.steps[event.step]
    wf, name = state.workflow_id, step.name
    next_ids = (skip_id(wf, name, step.run + 1), join_id(wf, name, step.run + 1))
    restarted = _restart_if_next_run(state, step, next_ids, event.task_id)
    if restarted is not None:
        state, step = restarted, restarted.steps[name]
    if event.task_id == skip_id(wf, name, step.run) and step.status is StepStatus.PENDING:
        return _put(state, replace(step, status=StepStatus.SKIPPED, output=None))
    if event.task_id == join_id(wf, name, step.run) and not step.status.done:
        failed = [t.error for t in step.tasks if t.status is TaskStatus.FAILED]
        status = StepStatus.FAILED if failed else StepStatus.COMPLETED
        error = failed[0] if failed else None
        return _put(state, replace(step, status=status, output=event.output, error=error))
    return state


def _step_failed(state: WorkflowState, plan: Plan, event: StepFailed) -> WorkflowState:
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    if step is None or task is None:
        return state
    if task.status not in (TaskStatus.RUNNING, TaskStatus.TIMED_OUT):
        return state
    failure = Failure(error_kind=event.error_kind, message=event.message)
    step = _put_task(step, replace(task, status=TaskStatus.FAILED, error=failure))
    if plan.steps[step.name].for_each is None:
        step = replace(step, status=StepStatus.FAILED, output=None, error=failure)
    return _put(state, step)


def _retry_scheduled(state: WorkflowState, event: StepRetryScheduled) -> WorkflowState:
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    if step is None or task is None:
        return state
    if task.status not in (TaskStatus.FAILED, TaskStatus.TIMED_OUT):
        return state
    waiting = replace(task, status=TaskStatus.RETRY_WAIT, retry_at=event.retry_at)
    return _put(state, replace(_put_task(step, waiting), status=StepStatus.RUNNING, error=None))


def _timed_out(state: WorkflowState, event: StepTimedOut) -> WorkflowState:
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    if step is None or task is None or task.status is not TaskStatus.RUNNING:
        return state
    failure = Failure(error_kind="timeout", message=f"deadline {event.deadline.isoformat()} passed")
    return _put(state, _put_task(step, replace(task, status=TaskStatus.TIMED_OUT, error=failure)))


def _lock_event(state: WorkflowState, event: LockAwaited | LockAcquired) -> WorkflowState:
    if isinstance(event, LockAwaited):
        return _lock_awaited(state, event)
    return _lock_acquired(state, event)


def _lock_awaited(state: WorkflowState, event: LockAwaited) -> WorkflowState:
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    if step is None or task is None or task.status is not TaskStatus.RUNNING:
        return state  # a journal from before locks were enforced, or stale
    if any(lock.request_id == event.request_id for lock in task.locks):
        return state
    # requested_at is exact for the first lock; a next one's is set when the previous is acquired
    lock = StepLock(awaited=event, requested_at=event.envelope.occurred_at)
    return _put(state, _put_task(step, replace(task, locks=(*task.locks, lock))))


def _lock_acquired(state: WorkflowState, event: LockAcquired) -> WorkflowState:
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    if step is None or task is None or task.status is not TaskStatus.RUNNING:
        return state
    waiting = task.awaiting_lock
    if waiting is None or waiting.request_id != event.request_id:
        return state  # a duplicate
    locks = list(task.locks)
    index = locks.index(waiting)
    locks[index] = replace(waiting, token=event.fencing_token, expires_at=event.lease_expires_at)
    if index + 1 < len(locks):  # the next lock's request goes out now
        locks[index + 1] = replace(locks[index + 1], requested_at=event.envelope.occurred_at)
    return _put(state, _put_task(step, replace(task, locks=tuple(locks))))


def _signal(state: WorkflowState, plan: Plan, event: SignalReceived) -> WorkflowState:
    if event.signal not in plan.signals:
        return state  # recorded in the journal; no step will ever consume it
    buffered = BufferedSignal(
        name=event.signal, payload=event.payload, event_id=event.envelope.event_id
    )
    return replace(state, signals=(*state.signals, buffered)[-BUFFERED_SIGNALS_MAX:])


def _consume_signal(state: WorkflowState, name: str) -> WorkflowState:
    for index, signal in enumerate(state.signals):
        if signal.name == name:
            return replace(state, signals=state.signals[:index] + state.signals[index + 1 :])
    return state


def _workflow_failed(state: WorkflowState, event: WorkflowFailed) -> WorkflowState:
    failure = Failure(error_kind=event.error_kind, message=event.message)
    step = state.steps.get(event.step) if event.step is not None else None
    if step is not None and not step.status.done:
        state = _put(state, replace(step, status=StepStatus.FAILED, error=failure))
    ended = _ended(state, event.envelope, WorkflowStatus.FAILED, error=failure)
    return replace(ended, failed_step=event.step)


def _ended(
    state: WorkflowState,
    envelope: Envelope,
    status: WorkflowStatus,
    *,
    output: JsonValue = None,
    error: Failure | None = None,
) -> WorkflowState:
    return replace(state, status=status, ended_at=envelope.occurred_at, output=output, error=error)
