"""Durable timers, derived from state.

Timers are not stored anywhere: every timer a workflow needs follows from its
state (a retry waits until ``retry_at``, an attempt has a ``deadline``, the
workflow has ``started_at + timeout_ms``), and the state follows from the
journal. The runner asks :func:`next_timer` after each change of a workflow,
keeps the earliest due time per workflow (e.g. in a heap), and when it is due
feeds the :class:`TimerFired` to ``decide`` like any input. A timer that is no
longer pending (the task answered meanwhile) or not yet due decides nothing,
and a fired timer is no longer pending, so feeding one twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from agentlog.workflow.ids import timer_event_id
from agentlog.workflow.state import TaskStatus, WorkflowState
from agentlog.workflow.steplocks import lock_deadline

WORKFLOW_TIMEOUT = "workflow-timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """A timer that is due: an input of ``decide``, not an Avro event.

    Attributes:
        workflow_id: the workflow.
        timer_id: ``"workflow-timeout"``, ``"deadline:<task id>"``, ``"retry:<task id>"``
            or ``"lock:<lock request id>"``.
        due_at: when it is due (aware UTC).
    """

    workflow_id: str
    timer_id: str
    due_at: datetime

    @property
    def event_id(self) -> str:
        """The deterministic id the decisions of this timer name as their cause."""
        return timer_event_id(self.workflow_id, self.timer_id)


class TimerKind(StrEnum):
    """What a timer is for."""

    RETRY = "retry"
    DEADLINE = "deadline"
    LOCK_WAIT = "lock_wait"
    WORKFLOW_TIMEOUT = "workflow_timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timer:
    """A pending timer with what it is for (what ``decide`` needs to act on it)."""

    fired: TimerFired
    kind: TimerKind
    step: str | None = None
    task_id: str | None = None


def timers(state: WorkflowState | None) -> tuple[Timer, ...]:
    """Every pending timer of a running workflow, earliest first."""
    if state is None or not state.running:
        return ()
    found: list[Timer] = []
    spec = state.spec
    if spec is not None and spec.timeout_ms is not None and state.started_at is not None:
        ends = state.started_at + timedelta(milliseconds=spec.timeout_ms)
        fired = TimerFired(workflow_id=state.workflow_id, timer_id=WORKFLOW_TIMEOUT, due_at=ends)
        found.append(Timer(fired=fired, kind=TimerKind.WORKFLOW_TIMEOUT))
    for step in state.steps.values():
        for task in step.tasks:
            due: list[tuple[TimerKind, str, datetime]] = []
            if task.status is TaskStatus.RUNNING:
                if task.deadline is not None:
                    due.append((TimerKind.DEADLINE, f"deadline:{task.task_id}", task.deadline))
                lock = task.awaiting_lock
                if lock is not None:
                    lock_id = f"lock:{lock.request_id}"
                    due.append((TimerKind.LOCK_WAIT, lock_id, lock_deadline(lock)))
            elif task.status is TaskStatus.RETRY_WAIT and task.retry_at is not None:
                due.append((TimerKind.RETRY, f"retry:{task.task_id}", task.retry_at))
            for kind, timer_id, due_at in due:
                fired = TimerFired(workflow_id=state.workflow_id, timer_id=timer_id, due_at=due_at)
                found.append(Timer(fired=fired, kind=kind, step=step.name, task_id=task.task_id))
    found.sort(key=lambda t: (t.fired.due_at, t.fired.timer_id))
    return tuple(found)


def pending_timers(state: WorkflowState | None) -> tuple[TimerFired, ...]:
    """Every pending timer of a running workflow, earliest first."""
    return tuple(t.fired for t in timers(state))


def next_timer(state: WorkflowState | None) -> TimerFired | None:
    """The earliest pending timer, or None; feed it to ``decide`` once ``due_at`` has passed.

    The first of :func:`timers` (earliest ``due_at``, then ``timer_id``), found
    in one pass that builds only the winner: the runner asks after every decision.
    """
    if state is None or not state.running:
        return None
    best: tuple[datetime, str] | None = None
    spec = state.spec
    if spec is not None and spec.timeout_ms is not None and state.started_at is not None:
        best = (state.started_at + timedelta(milliseconds=spec.timeout_ms), WORKFLOW_TIMEOUT)
    for step in state.steps.values():
        for task in step.tasks:
            status = task.status
            if status is _RUNNING:
                deadline = task.scheduled.deadline
                if deadline is not None and (best is None or deadline <= best[0]):
                    best = _earlier(best, (deadline, f"deadline:{task.task_id}"))
                if task.locks and (lock := task.awaiting_lock) is not None:
                    best = _earlier(best, (lock_deadline(lock), f"lock:{lock.request_id}"))
            elif status is _RETRY_WAIT and task.retry_at is not None:
                best = _earlier(best, (task.retry_at, f"retry:{task.task_id}"))
    if best is None:
        return None
    return TimerFired(workflow_id=state.workflow_id, timer_id=best[1], due_at=best[0])


_RUNNING = TaskStatus.RUNNING
_RETRY_WAIT = TaskStatus.RETRY_WAIT


def _earlier(
    best: tuple[datetime, str] | None, candidate: tuple[datetime, str]
) -> tuple[datetime, str]:
    return candidate if best is None or candidate < best else best
