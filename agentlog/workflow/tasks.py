"""What the runner publishes to agents: ``TaskRequested`` and ``TaskCancelled``.

The journal records ``StepScheduled``; the runner appends it, then publishes
the matching ``TaskRequested`` on ``tasks.<agent_kind>``; once the workflow
ends with the attempt still open, a ``TaskCancelled`` follows on the same
topic. The functions here are pure and deterministic (both event ids derive
from the ``StepScheduled`` event id, with index 0 and 1), so re-publishing
after a crash sends the very same events and agents can drop the duplicates.
"""

from __future__ import annotations

from datetime import datetime

from agentlog.schemas.events import StepScheduled, TaskCancelled, TaskRequested, derived_envelope
from agentlog.workflow.batch import SOURCE
from agentlog.workflow.ids import idempotency_key
from agentlog.workflow.state import TaskState, TaskStatus, WorkflowState


def task_for(state: WorkflowState | None, scheduled: StepScheduled) -> TaskRequested | None:
    """The task to publish for ``scheduled``, or None when there is none to publish.

    None for a signal step's wait (no agent runs it), for an attempt still
    waiting for a lock, and when ``state`` (the state after the decisions that
    include ``scheduled``) no longer has that attempt running: the workflow
    ended, or the attempt was answered already. ``fencing_tokens`` are those of
    the locks the attempt holds.

    Args:
        state: the workflow's state after folding the decision batch.
        scheduled: a ``StepScheduled`` of that batch.
    """
    task = _current(state, scheduled)
    if state is None or task is None or task.is_signal_wait or task.awaiting_lock is not None:
        return None
    step = state.steps[scheduled.step]
    return TaskRequested(
        envelope=derived_envelope(
            scheduled.envelope,
            0,
            "TaskRequested",
            scheduled.workflow_id,
            source=SOURCE,
        ),
        task_id=scheduled.task_id,
        workflow_id=scheduled.workflow_id,
        step=scheduled.step,
        attempt=scheduled.attempt,
        agent_kind=scheduled.agent_kind,
        input=scheduled.input,
        deadline=scheduled.deadline,
        idempotency_key=idempotency_key(scheduled.workflow_id, step.name, step.run, task.item),
        priority=scheduled.priority,
        fencing_tokens=task.fencing_tokens if task.locks else scheduled.fencing_tokens,
    )


def open_tasks(state: WorkflowState | None) -> tuple[StepScheduled, ...]:
    """Agent tasks whose attempt is running (with every lock it needs), in step order.

    For a running workflow these are the tasks to (re)publish after recovery
    (see :func:`tasks_to_publish`). Once the workflow is terminal (cancelled,
    failed, timed out) they are the tasks agents should stop: publish a
    cancellation for each.
    """
    if state is None or state.plan is None:
        return ()
    return tuple(
        task.scheduled
        for name in state.plan.order
        for task in state.steps[name].tasks
        if task.status is TaskStatus.RUNNING
        and not task.is_signal_wait
        and task.awaiting_lock is None
    )


def tasks_to_publish(state: WorkflowState | None) -> tuple[TaskRequested, ...]:
    """Every running task of a running workflow as ``TaskRequested``: re-publish on recovery."""
    if state is None or not state.running:
        return ()
    found = (task_for(state, scheduled) for scheduled in open_tasks(state))
    return tuple(task for task in found if task is not None)


def cancellation_for(scheduled: StepScheduled, reason: str) -> TaskCancelled:
    """The ``TaskCancelled`` telling agents to stop the task of ``scheduled``.

    Its event id is ``derive_event_id(<StepScheduled id>, 1)`` (the task's is
    index 0), so a re-publish after a crash is the same event.
    """
    return TaskCancelled(
        envelope=derived_envelope(
            scheduled.envelope, 1, "TaskCancelled", scheduled.workflow_id, source=SOURCE
        ),
        task_id=scheduled.task_id,
        workflow_id=scheduled.workflow_id,
        step=scheduled.step,
        attempt=scheduled.attempt,
        agent_kind=scheduled.agent_kind,
        reason=reason,
    )


def cancellations_to_publish(
    state: WorkflowState | None, *, ended_since: datetime
) -> tuple[TaskCancelled, ...]:
    """A ``TaskCancelled`` per open task of a workflow that ended at or after ``ended_since``.

    For recovery: the runner may have crashed between journaling the end and
    publishing the cancellations. Workflows that ended earlier are left out, so
    recovery does not re-send every cancellation in the journal's history.
    """
    if state is None or state.running or state.ended_at is None or state.ended_at < ended_since:
        return ()
    reason = f"workflow {state.workflow_id} is {state.status.value}"
    return tuple(cancellation_for(scheduled, reason) for scheduled in open_tasks(state))


def _current(state: WorkflowState | None, scheduled: StepScheduled) -> TaskState | None:
    if state is None or not state.running or state.workflow_id != scheduled.workflow_id:
        return None
    step = state.steps.get(scheduled.step)
    task = step.task(scheduled.task_id) if step is not None else None
    if task is None or task.status is not TaskStatus.RUNNING:
        return None
    return task if task.scheduled is scheduled or task.scheduled == scheduled else None
