"""Request and response bodies of the query API (pydantic, at the edge only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentlog.schemas.events import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN


class Status(StrEnum):
    """A workflow's status."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    rejected = "rejected"


class Problem(BaseModel):
    """An error: what went wrong and what to do."""

    detail: str


class Failure(BaseModel):
    """Why an attempt, a step or a workflow failed."""

    error_kind: str
    message: str


class WorkflowSummary(BaseModel):
    """One row of the workflow list."""

    workflow_id: str
    status: Status
    definition: str
    version: int
    priority: int
    labels: dict[str, str]
    idempotency_key: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: Failure | None
    failed_step: str | None
    journal_length: int
    last_event_id: str
    last_event_at: datetime


class WorkflowPage(BaseModel):
    """A page of workflows, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[WorkflowSummary]
    next_cursor: str | None


class TaskOut(BaseModel):
    """One item of a step and its current attempt."""

    item: int
    status: str
    task_id: str
    attempt: int
    agent_kind: str
    deadline: str | None
    retry_at: str | None
    output: Any = None
    error: Failure | None


class StepOut(BaseModel):
    """A step's current run."""

    status: str
    run: int
    output: Any = None
    error: Failure | None
    tasks: list[TaskOut]


class WorkflowState(BaseModel):
    """A workflow's state: its journal folded (up to ``as_of`` when given)."""

    workflow_id: str
    status: Status
    definition: str
    version: int
    priority: int
    input: Any = None
    output: Any = None
    error: Failure | None
    failed_step: str | None
    started_at: str | None
    ended_at: str | None
    idempotency_key: str | None
    labels: dict[str, str]
    steps: dict[str, StepOut]
    journal_length: int = Field(description="journal events folded")
    last_event_id: str = Field(description="the last journal event folded")
    as_of: str | None = Field(description="the as_of asked for, if any")


class EventOut(BaseModel):
    """One archived event, as it was on its topic."""

    event_id: str
    type: str
    topic: str
    partition: int
    offset: int
    key: str
    occurred_at: datetime
    payload: dict[str, Any]


class EventPage(BaseModel):
    """A page of events, oldest first."""

    items: list[EventOut]
    next_cursor: str | None


class TimelineStep(BaseModel):
    """One attempt of one item of one run of a step (or a skip or join), with its times."""

    task_id: str
    step: str
    run: int | None
    item: int | None
    attempt: int
    kind: str
    status: str
    agent_kind: str | None
    priority: int | None
    scheduled_at: datetime | None
    deadline: datetime | None
    requested_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    timed_out_at: datetime | None
    retry_at: datetime | None
    next_attempt: int | None
    backoff_ms: int | None
    duration_ms: float | None
    error_kind: str | None
    error_message: str | None
    retryable: bool | None
    agent_id: str | None
    agent_outcome: str | None
    agent_reported_at: datetime | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    agent_latency_ms: float | None
    progress: float | None
    progress_message: str | None
    progress_at: datetime | None
    cancelled_at: datetime | None = Field(None, description="the orchestrator withdrew the task")
    cancel_reason: str | None = None
    output: Any = None


class Timeline(BaseModel):
    """Every attempt of a workflow's steps, in the order they started."""

    workflow_id: str
    steps: list[TimelineStep]


class Waiter(BaseModel):
    """A request waiting for a lock."""

    request_id: str
    requester: str
    position: int
    queued_at: datetime


class LockOut(BaseModel):
    """A lock resource: who holds it, with which fencing token, who waits."""

    resource: str
    status: str
    holder: str | None
    holder_request_id: str | None
    fencing_token: int | None
    lease_expires_at: datetime | None
    granted_at: datetime | None
    queue: list[Waiter]
    requests: int
    grants: int
    queued: int
    denials: int
    releases: int
    expiries: int
    last_event_at: datetime


class LockRequestOut(BaseModel):
    """The life of one lock request."""

    request_id: str
    requester: str | None
    workflow_id: str | None
    status: str
    ttl_ms: int | None
    wait_timeout_ms: int | None
    requested_at: datetime | None
    queued_at: datetime | None
    queue_position: int | None
    granted_at: datetime | None
    fencing_token: int | None
    lease_expires_at: datetime | None
    renewals: int
    denied_at: datetime | None
    deny_reason: str | None
    released_at: datetime | None
    expired_at: datetime | None
    wait_ms: float | None


class LockDetail(LockOut):
    """A lock with its recent requests and its event history."""

    recent_requests: list[LockRequestOut]
    history: list[EventOut]


class LockList(BaseModel):
    """Lock resources, by name."""

    items: list[LockOut]
    next_cursor: str | None


class AgentOut(BaseModel):
    """A registered agent process."""

    agent_id: str
    agent_kind: str
    alive: bool = Field(description="not deregistered and seen within the liveness window")
    host: str | None
    pid: int | None
    concurrency: int | None
    version: str | None
    registered_at: datetime | None
    last_seen_at: datetime
    in_flight: int | None
    capacity: int | None
    heartbeats: int
    deregistered_at: datetime | None
    deregister_reason: str | None


class AgentList(BaseModel):
    """Agents, by id."""

    items: list[AgentOut]
    next_cursor: str | None


class DeadLetterOut(BaseModel):
    """A record a consumer could not decode or handle; ``raw`` and key are hex."""

    event_id: str
    occurred_at: datetime
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    original_timestamp: datetime | None
    error_reason: str
    error: str
    raw: str
    headers: list[dict[str, Any]]
    consumer_group: str


class DeadLetterPage(BaseModel):
    """Dead letters, newest first."""

    items: list[DeadLetterOut]
    next_cursor: str | None


class KindStats(BaseModel):
    """One agent kind over the stats window."""

    agent_kind: str
    completed: int
    failed: int
    retried: int
    timed_out: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float | None
    cache_latency_saved_ms: float
    cache_tokens_saved: int


class PartitionLag(BaseModel):
    """How far the projector is behind on one partition."""

    topic: str
    partition: int
    next_offset: int
    end_offset: int | None
    lag: int | None
    updated_at: datetime


class Stats(BaseModel):
    """A summary of everything the projections know."""

    workflows: dict[str, int]
    events: int
    dead_letters: int
    agents_alive: int
    agents_total: int
    locks_held: int
    lock_waiters: int
    window_minutes: int
    agent_kinds: list[KindStats]
    projector: list[PartitionLag]


class MinuteStats(BaseModel):
    """One agent kind in one minute (zeros when nothing happened in it)."""

    minute: datetime = Field(description="the start of the minute (UTC)")
    completed: int = Field(description="steps completed in the minute")
    failed: int = Field(description="steps failed")
    retried: int = Field(description="step retries scheduled")
    timed_out: int = Field(description="steps timed out")
    latency_p50_ms: float | None = Field(
        description="median latency (schedule to completion) of the steps completed in the "
        "minute, from its histogram; null when none completed"
    )
    latency_p95_ms: float | None = Field(description="95th percentile step latency")
    latency_p99_ms: float | None = Field(description="99th percentile step latency")
    cache_hits: int = Field(description="result cache hits")
    cache_misses: int = Field(description="result cache misses")


class KindMinutes(BaseModel):
    """The per-minute series of one agent kind."""

    agent_kind: str
    minutes: list[MinuteStats] = Field(
        description="one entry per minute of the window, oldest first, minutes without rollups "
        "included as zeros"
    )


class MinuteSeries(BaseModel):
    """Per agent kind and minute rollups over the last ``window_minutes`` minutes."""

    window_minutes: int = Field(description="minutes in each series")
    first_minute: datetime = Field(description="the start of the oldest minute (UTC)")
    last_minute: datetime = Field(
        description="the start of the newest minute: the current one, still filling (UTC)"
    )
    agent_kinds: list[KindMinutes] = Field(
        description="the kinds with at least one rollup in the window, by name"
    )


class _Start(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Any = Field(None, description="the workflow input (any JSON)")
    priority: int = Field(PRIORITY_DEFAULT, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    workflow_id: str | None = Field(None, min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)


class StartByName(_Start):
    """Start a registered workflow definition."""

    definition: str = Field(min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="null: the latest")


class StartInline(_Start):
    """Start a workflow from an inline spec (the orchestrator validates it)."""

    spec: dict[str, Any]


class CancelWorkflow(BaseModel):
    """Why to cancel."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000)


class SendSignal(BaseModel):
    """A named signal and its payload."""

    model_config = ConfigDict(extra="forbid")

    signal: str = Field(min_length=1, max_length=200)
    payload: Any = None


class Accepted(BaseModel):
    """The request was produced to Kafka; the orchestrator decides what happens."""

    workflow_id: str
    accepted: bool = True


class Redriven(BaseModel):
    """Where the dead letter's original record was produced again."""

    event_id: str
    topic: str
    partition: int
    offset: int
