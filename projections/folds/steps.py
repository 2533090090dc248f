"""The ``steps`` timeline: one row per task id (an attempt of an item of a run of a step).

Rows merge events from three topics (journal, ``tasks.<kind>``, responses)
that the projector may read in any relative order, so every column is set in
an order-independent way: journal facts are unique per task id, agent reports
keep the earliest report, progress keeps the latest, times keep the minimum.
Status and duration are derived from the columns, never from arrival order.

Agent-kind rollups (:class:`~.metrics.AgentMinute`) come from journal events
only, which arrive in order per workflow: completions, failures, retries and
timeouts, with the latency from ``StepScheduled`` to ``StepCompleted``.

Rows are mutable working copies: :func:`apply_step` updates one in place and
:func:`derive` fills status and duration once per batch; :func:`step_after`
is the pure form of both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from agentlog.projections.folds.metrics import AgentMinute, Rollups, bucket_of
from agentlog.projections.records import json_text, micros, minute_of
from agentlog.schemas.events import (
    StepCompleted,
    StepFailed,
    StepRetryScheduled,
    StepScheduled,
    StepTimedOut,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskRequested,
)

StepEvent = (
    StepScheduled
    | StepCompleted
    | StepFailed
    | StepRetryScheduled
    | StepTimedOut
    | TaskRequested
    | TaskCancelled
    | TaskCompleted
    | TaskFailed
    | TaskProgress
)
STEP_EVENT_TYPES = (
    StepScheduled,
    StepCompleted,
    StepFailed,
    StepRetryScheduled,
    StepTimedOut,
    TaskRequested,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
)

#: Events the agent side reports (a tuple: ``isinstance`` with ``A | B | …`` builds the union
#: at every call, which cost more than the rest of :func:`apply_step`).
_AGENT_SIDE = (TaskRequested, TaskCancelled, TaskCompleted, TaskFailed, TaskProgress)


@dataclass(slots=True, kw_only=True)
class StepRow:
    """One row of ``steps`` (columns in table order)."""

    task_id: str
    workflow_id: str
    step: str
    run: int | None
    item: int | None
    attempt: int
    kind: str
    status: str
    agent_kind: str | None = None
    priority: int | None = None
    first_event_at: datetime
    scheduled_at: datetime | None = None
    deadline: datetime | None = None
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    output: str | None = None
    failed_at: datetime | None = None
    error_kind: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    timed_out_at: datetime | None = None
    retry_at: datetime | None = None
    next_attempt: int | None = None
    backoff_ms: int | None = None
    duration_ms: float | None = None
    agent_id: str | None = None
    agent_outcome: str | None = None
    agent_reported_at: datetime | None = None
    agent_event_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    agent_latency_ms: float | None = None
    progress: float | None = None
    progress_message: str | None = None
    progress_at: datetime | None = None
    progress_event_id: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


def parse_task_id(workflow_id: str, step: str, task_id: str) -> tuple[int | None, int | None, str]:
    """(run, item, kind) from a task id (``agentlog.workflow.ids``); kind is task, skip or join."""
    prefix = f"{workflow_id}/{step}/"
    if not task_id.startswith(prefix):
        return None, None, "task"
    parts = task_id[len(prefix) :].split("/")
    try:
        if len(parts) == 2 and parts[1] in ("skip", "join"):
            return int(parts[0]), None, parts[1]
        if len(parts) == 3:
            return int(parts[0]), int(parts[1]), "task"
    except ValueError:
        pass
    return None, None, "task"


def new_step(event: StepEvent) -> StepRow:
    """The empty row of the event's task id, before any event is applied."""
    run, item, kind = parse_task_id(event.workflow_id, event.step, event.task_id)
    return StepRow(
        task_id=event.task_id,
        workflow_id=event.workflow_id,
        step=event.step,
        run=run,
        item=item,
        attempt=event.attempt,
        kind=kind,
        status="pending",
        first_event_at=event.envelope.occurred_at,
    )


def derive(row: StepRow) -> None:
    """Recompute ``status`` and ``duration_ms`` from the other columns, in place."""
    end = row.completed_at or row.failed_at or row.timed_out_at
    if row.completed_at is not None:
        status = {"skip": "skipped", "join": "joined"}.get(row.kind, "completed")
    elif row.failed_at is not None:
        status = "failed"
    elif row.timed_out_at is not None:
        status = "timed_out"
    elif row.cancelled_at is not None:
        status = "cancelled"
    elif row.scheduled_at is not None:
        status = "waiting" if row.kind == "signal" else "running"
    else:
        status = "pending"
    row.status = status
    row.duration_ms = (
        (end - row.scheduled_at).total_seconds() * 1000
        if end is not None and row.scheduled_at is not None
        else None
    )


def step_after(row: StepRow | None, event: StepEvent) -> tuple[StepRow, list[AgentMinute]]:
    """The row after ``event`` and the rollup deltas it causes; pure."""
    new = replace(row) if row is not None else new_step(event)
    rollups = Rollups()
    apply_step(new, event, rollups)
    derive(new)
    return new, rollups.sorted_agents()


def apply_step(row: StepRow, event: StepEvent, rollups: Rollups) -> None:
    """Fold a (new) event of ``row``'s task into ``row`` in place, counting into ``rollups``.

    Call :func:`derive` before storing the row.
    """
    at = event.envelope.occurred_at
    row.first_event_at = min(row.first_event_at, at)
    if isinstance(event, _AGENT_SIDE):
        _agent_side(row, event, at)
    else:
        _journal_side(row, event, at, rollups)


def _journal_side(
    row: StepRow,
    event: StepScheduled | StepCompleted | StepFailed | StepRetryScheduled | StepTimedOut,
    at: datetime,
    rollups: Rollups,
) -> None:
    match event:
        case StepScheduled():
            if event.agent_kind == "":
                row.kind = "signal"
            row.agent_kind = event.agent_kind
            row.priority = event.priority
            row.scheduled_at = at
            row.deadline = event.deadline
        case StepCompleted():
            row.completed_at = at
            row.output = json_text(event.output)
            if event.attempt >= 1 and row.agent_kind:
                _latency(rollups.agent(row.agent_kind, minute_of(at)), row.scheduled_at, at)
        case StepFailed():
            row.failed_at = at
            row.error_kind = event.error_kind
            row.error_message = event.message
            row.retryable = event.retryable
            if row.agent_kind:
                rollups.agent(row.agent_kind, minute_of(at)).failed += 1
        case StepRetryScheduled():
            row.retry_at = event.retry_at
            row.next_attempt = event.next_attempt
            row.backoff_ms = event.backoff_ms
            if row.agent_kind:
                rollups.agent(row.agent_kind, minute_of(at)).retried += 1
        case StepTimedOut():
            row.timed_out_at = at
            if row.agent_kind:
                rollups.agent(row.agent_kind, minute_of(at)).timed_out += 1


def _agent_side(
    row: StepRow,
    event: TaskRequested | TaskCancelled | TaskCompleted | TaskFailed | TaskProgress,
    at: datetime,
) -> None:
    match event:
        case TaskCancelled():
            if row.cancelled_at is None or at < row.cancelled_at:
                row.cancelled_at = at
                row.cancel_reason = event.reason
        case TaskRequested():
            if row.requested_at is None or at < row.requested_at:
                row.requested_at = at
            row.agent_kind = row.agent_kind or event.agent_kind
            if row.priority is None:
                row.priority = event.priority
        case TaskCompleted() | TaskFailed():
            _agent_report(row, event, at)
        case TaskProgress():
            _progress(row, event, at)


def _latency(minute: AgentMinute, scheduled_at: datetime | None, at: datetime) -> None:
    latency_ms = (at - scheduled_at).total_seconds() * 1000 if scheduled_at else 0.0
    minute.completed += 1
    minute.latency_us_sum += micros(latency_ms / 1000)
    buckets = list(minute.latency_buckets)
    buckets[bucket_of(latency_ms)] += 1
    minute.latency_buckets = tuple(buckets)


def _agent_report(row: StepRow, event: TaskCompleted | TaskFailed, at: datetime) -> None:
    """Keep the earliest report (agents may answer a redelivered task twice)."""
    key = (at, event.envelope.event_id)
    if (
        row.agent_reported_at is not None
        and row.agent_event_id is not None
        and key >= (row.agent_reported_at, row.agent_event_id)
    ):
        return
    row.agent_id = event.agent_id
    row.agent_reported_at = at
    row.agent_event_id = event.envelope.event_id
    if isinstance(event, TaskCompleted):
        usage = event.usage
        row.agent_outcome = "completed"
        row.input_tokens = usage.input_tokens
        row.output_tokens = usage.output_tokens
        row.cost_usd = usage.cost_usd
        row.agent_latency_ms = usage.latency_ms
    else:
        row.agent_outcome = "failed"
        row.input_tokens = row.output_tokens = None
        row.cost_usd = row.agent_latency_ms = None


def _progress(row: StepRow, event: TaskProgress, at: datetime) -> None:
    """Keep the latest progress report."""
    key = (at, event.envelope.event_id)
    if (
        row.progress_at is not None
        and row.progress_event_id is not None
        and key <= (row.progress_at, row.progress_event_id)
    ):
        return
    row.progress = event.fraction
    row.progress_message = event.message
    row.progress_at = at
    row.progress_event_id = event.envelope.event_id
