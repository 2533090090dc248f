"""Moving a workflow forward after an input: start ready steps, join fan-outs,
evaluate loops, finish the workflow.

Called by ``decide`` after it recorded what the input changed. Every function
here takes the :class:`~agentlog.workflow.batch.Batch` and emits into it.
"""

from __future__ import annotations

from datetime import timedelta

from agentlog.schemas.events import (
    JsonValue,
    StepCompleted,
    StepFailed,
    StepRetryScheduled,
    StepScheduled,
    WorkflowFailed,
    WorkflowSucceeded,
)
from agentlog.workflow.batch import PENDING, Batch
from agentlog.workflow.context import JsonContext, item_context, step_context
from agentlog.workflow.evolve import restart_loop
from agentlog.workflow.expr import ExpressionError, evaluate, truthy
from agentlog.workflow.graph import Plan
from agentlog.workflow.ids import join_id, skip_id, task_id
from agentlog.workflow.retry import backoff_ms
from agentlog.workflow.state import (
    DONE_STEP_STATUSES,
    StepStatus,
    TaskState,
    TaskStatus,
    WorkflowState,
)
from agentlog.workflow.steplocks import await_locks, lock_resources
from agentlog.workflow.template import render

_DONE = DONE_STEP_STATUSES
_PENDING = StepStatus.PENDING
_RUNNING = StepStatus.RUNNING
_FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)


def advance(batch: Batch) -> None:
    """Make every decision that follows from the batch's state, until none does."""
    while (state := batch.running()) is not None:
        assert state.plan is not None
        before = len(batch.events)
        if batch.loop_checks:
            check_loop(batch, batch.loop_checks.pop(0))
            continue
        if not _act_once(batch, state, state.plan):
            finish(batch, state, state.plan)
            return
        if len(batch.events) == before:
            raise RuntimeError(f"workflow {state.workflow_id!r} made no progress; please report")


def _act_once(batch: Batch, state: WorkflowState, plan: Plan) -> bool:
    """Start one ready step or join one finished fan-out; False when there is none."""
    steps = state.steps
    for name, after, fans_out in plan.scan:  # runs for every input: no lookups, no generators
        step = steps[name]
        status = step.status
        if status is _PENDING:
            for dep in after:
                if steps[dep].status not in _DONE:
                    break
            else:
                start_step(batch, state, name)
                return True
        elif (
            fans_out
            and status is _RUNNING
            and step.tasks
            and all(t.status in _FINISHED for t in step.tasks)
        ):
            outputs: list[JsonValue] = [t.output for t in step.tasks]
            _emit_join(batch, state, name, step.run, outputs)
            return True
    return False


def start_step(batch: Batch, view: WorkflowState, name: str) -> None:
    """Start run ``view.steps[name].run`` of a step: skip it, wait, or schedule its tasks.

    Args:
        batch: receives the decisions.
        view: the state to evaluate expressions in: the batch's state, or for a
            loop's next round the state with the loop reset (which ``evolve``
            reproduces when it folds the first decision of the round).
        name: the step.
    """
    assert view.plan is not None
    spec = view.plan.steps[name]
    run = view.steps[name].run
    wf = view.workflow_id
    # building the context costs O(steps); most steps read none of it
    context = step_context(view, name) if name in view.plan.reads_context else {}
    try:
        if spec.when is not None and not truthy(evaluate(spec.when, context)):
            skip = skip_id(wf, name, run)
            batch.emit(_completed(wf, name, skip, 0, None))
            return
        if spec.for_each is None:
            inputs = [render(spec.input, context)]
        else:
            items = _items(spec.for_each, context)
            inputs = [
                render(spec.input, item_context(context, it, i)) for i, it in enumerate(items)
            ]
    except ExpressionError as e:
        fail_workflow(batch, name, "expression_error", f"step {name!r}: {e}")
        return
    if spec.for_each is not None and not inputs:
        _emit_join(batch, view, name, run, [])
        return
    for item, value in enumerate(inputs):
        schedule_attempt(batch, view, name, item=item, attempt=1, value=value)
    if spec.signal is not None:
        _deliver_buffered(batch, name, spec.signal)


def _items(expression: str, context: JsonContext) -> list[JsonValue]:
    """The fan-out list of a ``for_each`` step.

    Raises:
        ExpressionError: the expression fails or gives something else than a list.
    """
    items = evaluate(expression, context)
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise ExpressionError(f"for_each {expression!r} gave {kind}, not a list")
    return items


def schedule_attempt(
    batch: Batch, view: WorkflowState, name: str, *, item: int, attempt: int, value: JsonValue
) -> None:
    """Emit the ``StepScheduled`` of one attempt of one item (a wait, for a signal step).

    A step with locks also gets a ``LockAwaited`` per lock (:mod:`.steplocks`);
    its task is published once every lock is acquired.
    """
    assert view.plan is not None
    if batch.running() is None:
        return  # an earlier item of this step failed the workflow
    spec = view.plan.steps[name]
    wf = view.workflow_id
    timeout = spec.timeout_ms
    try:
        locks = lock_resources(view, name, item)
    except ExpressionError as e:
        fail_workflow(batch, name, "expression_error", f"step {name!r}: locks: {e}")
        return
    attempt_id = task_id(wf, name, view.steps[name].run, item, attempt)
    batch.emit(
        StepScheduled(
            envelope=PENDING,
            workflow_id=wf,
            step=name,
            task_id=attempt_id,
            attempt=attempt,
            agent_kind=spec.agent or "",
            input=value,
            deadline=None if timeout is None else batch.now + timedelta(milliseconds=timeout),
            priority=view.priority,
        )
    )
    await_locks(batch, wf, name, attempt_id, locks)


def _deliver_buffered(batch: Batch, name: str, signal: str) -> None:
    """Complete a signal step at once with a signal that arrived before it waited."""
    state = batch.running()
    if state is None:
        return
    buffered = next((s for s in state.signals if s.name == signal), None)
    task = state.steps[name].tasks[0] if state.steps[name].tasks else None
    if buffered is not None and task is not None and task.status is TaskStatus.RUNNING:
        batch.emit(_completed(state.workflow_id, name, task.task_id, 1, buffered.payload))


def check_loop(batch: Batch, name: str) -> None:
    """After a round of the loop ending at ``name``: start the next round, or leave the loop."""
    state = batch.running()
    if state is None:
        return
    assert state.plan is not None
    repeat = state.plan.steps[name].repeat
    step = state.steps[name]
    if repeat is None or step.status is StepStatus.SKIPPED:
        return  # a skipped loop step ends its loop
    try:
        again = truthy(evaluate(repeat.while_, step_context(state, name)))
    except ExpressionError as e:
        fail_workflow(batch, name, "expression_error", f"step {name!r}: repeat.while: {e}")
        return
    if not again:
        return
    if step.run >= repeat.max_iterations:
        if repeat.on_exhausted == "fail":
            message = (
                f"loop of step {name!r} still wants to repeat after "
                f"{repeat.max_iterations} rounds (max_iterations)"
            )
            fail_workflow(batch, name, "loop_exhausted", message)
        return
    reset = restart_loop(state, repeat.back_to)
    if reset is None:
        raise RuntimeError(f"step {name!r}: no loop goes back to {repeat.back_to!r}")
    start_step(batch, reset, repeat.back_to)


def fail_attempt(
    batch: Batch,
    name: str,
    task: TaskState,
    *,
    error_kind: str,
    message: str,
    retryable: bool,
    record_failure: bool = True,
) -> None:
    """An attempt failed: schedule a retry, or fail the step (and the workflow).

    Args:
        batch: receives the decisions.
        name: the step.
        task: the item whose current attempt failed.
        error_kind: machine-readable error class (``"timeout"`` for timeouts).
        message: human-readable message.
        retryable: whether the failure may go away on retry.
        record_failure: emit ``StepFailed`` before a retry; False after a
            ``StepTimedOut``, which already records the attempt's end.
    """
    state = batch.running()
    if state is None:
        return
    assert state.plan is not None
    spec = state.plan.steps[name]
    policy = spec.retry
    wf = state.workflow_id
    retry = (
        retryable
        and not task.is_signal_wait
        and error_kind not in policy.non_retryable
        and task.attempt < policy.max_attempts
    )
    if retry:
        if record_failure:
            batch.emit(_failed(wf, name, task, error_kind, message, retryable=True))
        delay = backoff_ms(policy, task.task_id, task.attempt)
        batch.emit(
            StepRetryScheduled(
                envelope=PENDING,
                workflow_id=wf,
                step=name,
                task_id=task.task_id,
                attempt=task.attempt,
                next_attempt=task.attempt + 1,
                retry_at=batch.now + timedelta(milliseconds=delay),
                backoff_ms=delay,
            )
        )
        return
    batch.emit(_failed(wf, name, task, error_kind, message, retryable=False))
    if not spec.continue_on_failure:
        attempts = f"{task.attempt} attempt{'s' if task.attempt > 1 else ''}"
        fail_workflow(batch, name, error_kind, f"step {name!r} failed after {attempts}: {message}")


def fail_workflow(batch: Batch, step: str | None, error_kind: str, message: str) -> None:
    """Emit ``WorkflowFailed`` (terminal)."""
    state = batch.running()
    if state is not None:
        batch.emit(
            WorkflowFailed(
                envelope=PENDING,
                workflow_id=state.workflow_id,
                step=step,
                error_kind=error_kind,
                message=message,
            )
        )


def finish(batch: Batch, state: WorkflowState, plan: Plan) -> None:
    """Succeed once every step is done; fail if nothing can move any more."""
    done = True
    for step in state.steps.values():
        status = step.status
        if status is _RUNNING:
            return  # it will answer: nothing to finish, nothing stuck
        if status not in _DONE:
            done = False
    if not done:
        pending = ", ".join(n for n in plan.order if not state.steps[n].status.done)
        fail_workflow(batch, None, "stuck", f"no step can run; waiting: {pending}")
        return
    try:
        if plan.spec.output is not None:
            output = render(plan.spec.output, step_context(state, None))
        else:
            output = {name: state.steps[name].output for name in plan.sinks}
    except ExpressionError as e:
        fail_workflow(batch, None, "expression_error", f"output: {e}")
        return
    batch.emit(WorkflowSucceeded(envelope=PENDING, workflow_id=state.workflow_id, output=output))


def _emit_join(
    batch: Batch, view: WorkflowState, name: str, run: int, outputs: list[JsonValue]
) -> None:
    join = join_id(view.workflow_id, name, run)
    batch.emit(_completed(view.workflow_id, name, join, 0, outputs))


def _completed(wf: str, step: str, task: str, attempt: int, output: JsonValue) -> StepCompleted:
    return StepCompleted(
        envelope=PENDING, workflow_id=wf, step=step, task_id=task, attempt=attempt, output=output
    )


def _failed(
    wf: str, step: str, task: TaskState, kind: str, message: str, *, retryable: bool
) -> StepFailed:
    return StepFailed(
        envelope=PENDING,
        workflow_id=wf,
        step=step,
        task_id=task.task_id,
        attempt=task.attempt,
        error_kind=kind,
        message=message,
        retryable=retryable,
    )
