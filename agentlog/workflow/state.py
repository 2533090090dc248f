"""Workflow state: what the journal says about one workflow, folded by ``evolve``.

Everything here is a frozen value. Collections are tuples and read-only
mappings (:class:`types.MappingProxyType`; ``evolve`` copies and re-wraps them).
JSON values (inputs, outputs, payloads) are plain ``dict`` / ``list`` values
shared with the events they came from, as in :mod:`agentlog.schemas.events`:
nothing mutates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from agentlog.schemas.events import JsonValue, LockAwaited, StepScheduled
from agentlog.workflow.graph import Plan
from agentlog.workflow.spec import WorkflowSpec

#: Input event ids remembered to ignore redeliveries. Redelivery replays the
#: inputs after the last committed offset, so a window this size covers it.
SEEN_INPUTS_MAX = 1024
#: Journal event ids remembered to ignore duplicate appends (producer retries).
RECENT_EVENTS_MAX = 512
#: Signals buffered for steps that are not waiting yet; the oldest go first.
BUFFERED_SIGNALS_MAX = 1000


class WorkflowStatus(StrEnum):
    """Where a workflow is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        """True once nothing more will happen."""
        return self is not WorkflowStatus.RUNNING


class StepStatus(StrEnum):
    """Where a step's current run is (``steps.<name>.status`` in expressions)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        """True when steps after it may start (failed only with continue_on_failure)."""
        return self in DONE_STEP_STATUSES


#: The statuses of :attr:`StepStatus.done` (``in`` this set is the cheap test in loops).
DONE_STEP_STATUSES = frozenset({StepStatus.COMPLETED, StepStatus.SKIPPED, StepStatus.FAILED})


class TaskStatus(StrEnum):
    """Where one item of a step is (one attempt at a time)."""

    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    TIMED_OUT = "timed_out"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """Why an attempt, a step or a workflow failed."""

    error_kind: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StepLock:
    """A lock one attempt asked for (``LockAwaited``) and, once granted, holds (``LockAcquired``).

    Attributes:
        awaited: the journal event that declared the request; the runner derives
            the ``LockRequested`` (and later the release) from it.
        token: the fencing token once acquired.
        expires_at: the lease's end (the lock manager's clock) once acquired.
        requested_at: when the request was (or will be) sent: the attempt's start
            for the first lock, the previous lock's acquisition for the others
            (locks are taken one at a time, in resource order).
    """

    awaited: LockAwaited
    token: int | None = None
    expires_at: datetime | None = None
    requested_at: datetime

    @property
    def resource(self) -> str:
        """The locked resource."""
        return self.awaited.resource

    @property
    def request_id(self) -> str:
        """The lock request's id (one grant per request)."""
        return self.awaited.request_id

    @property
    def acquired(self) -> bool:
        """True once the grant is recorded."""
        return self.token is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """One item of a step (the only one without ``for_each``) and its current attempt.

    Attributes:
        item: the ``for_each`` index, 0 without ``for_each``.
        status: the current attempt's status.
        scheduled: the decision that scheduled the current attempt; the runner
            derives ``TaskRequested`` from it (:func:`agentlog.workflow.tasks.task_for`).
        retry_at: when the next attempt starts, while ``RETRY_WAIT``.
        output: the output once completed.
        error: the last failure, if any.
        locks: the locks the current attempt asked for, in acquisition order
            (empty for steps without locks).
    """

    item: int
    status: TaskStatus
    scheduled: StepScheduled
    retry_at: datetime | None = None
    output: JsonValue = None
    error: Failure | None = None
    locks: tuple[StepLock, ...] = ()

    @property
    def awaiting_lock(self) -> StepLock | None:
        """The lock the attempt waits for (the first not acquired), or None."""
        return next((lock for lock in self.locks if not lock.acquired), None)

    @property
    def requested_locks(self) -> tuple[StepLock, ...]:
        """The locks whose request was sent: every acquired one and the awaited one."""
        waiting = self.awaiting_lock
        return tuple(lock for lock in self.locks if lock.acquired or lock is waiting)

    @property
    def fencing_tokens(self) -> dict[str, int]:
        """Resource -> fencing token of every lock the attempt holds."""
        return {lock.resource: lock.token for lock in self.locks if lock.token is not None}

    @property
    def task_id(self) -> str:
        """Id of the current attempt."""
        return self.scheduled.task_id

    @property
    def attempt(self) -> int:
        """Number of the current attempt, from 1."""
        return self.scheduled.attempt

    @property
    def deadline(self) -> datetime | None:
        """When the current attempt times out."""
        return self.scheduled.deadline

    @property
    def is_signal_wait(self) -> bool:
        """True for a signal step's wait: no agent runs it."""
        return self.scheduled.agent_kind == ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepState:
    """The current run of a step.

    Attributes:
        name: the step name.
        status: the run's status.
        run: how many times the step has been started by loops, from 1
            (``iteration`` in expressions).
        tasks: one per item, in item order; empty until scheduled.
        output: the run's output; after a loop restarts the step, the previous
            round's output until the new round finishes.
        error: the failure of a failed run.
    """

    name: str
    status: StepStatus = StepStatus.PENDING
    run: int = 1
    tasks: tuple[TaskState, ...] = ()
    output: JsonValue = None
    error: Failure | None = None

    def task(self, task_id: str) -> TaskState | None:
        """The item whose current attempt is ``task_id``."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferedSignal:
    """A signal received before any step waited for it."""

    name: str
    payload: JsonValue
    event_id: str


def _empty_steps() -> Mapping[str, StepState]:
    return MappingProxyType({})


def _empty_labels() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowState:
    """One workflow as its journal describes it.

    Attributes:
        workflow_id: the workflow (the partition key).
        status: running, or how it ended.
        definition: the spec name ("" when rejected before a spec was known).
        version: the spec version (0 when unknown).
        spec: the spec it runs; None when rejected.
        input: the workflow input.
        priority: 1-5, carried on every task.
        request_event_id: ``event_id`` of the ``WorkflowRequested``.
        idempotency_key: the request's idempotency key.
        labels: the request's labels.
        correlation_id: the request's correlation id, for timer decisions.
        traceparent: the request's trace context, for timer decisions.
        started_at: when it started (None when rejected).
        ended_at: when it reached a terminal status.
        steps: every step's current run, by name.
        signals: signals received and not yet consumed by a signal step.
        output: the workflow output once succeeded.
        error: why it failed, was rejected or cancelled.
        failed_step: the step whose failure failed it.
        seen_inputs: the last input event ids that led to decisions (bounded).
        recent_events: the last journal event ids folded (bounded).
        journal_length: journal events folded so far.
        plan: the spec's derived structure (not compared: a function of ``spec``).
    """

    workflow_id: str
    status: WorkflowStatus
    definition: str
    version: int
    spec: WorkflowSpec | None
    input: JsonValue
    priority: int
    request_event_id: str
    idempotency_key: str | None = None
    labels: Mapping[str, str] = field(default_factory=_empty_labels)
    correlation_id: str
    traceparent: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    steps: Mapping[str, StepState] = field(default_factory=_empty_steps)
    signals: tuple[BufferedSignal, ...] = ()
    output: JsonValue = None
    error: Failure | None = None
    failed_step: str | None = None
    seen_inputs: tuple[str, ...] = ()
    recent_events: tuple[str, ...] = ()
    journal_length: int = 0
    plan: Plan | None = field(default=None, compare=False, repr=False)

    @property
    def running(self) -> bool:
        """True until a terminal event."""
        return self.status is WorkflowStatus.RUNNING

    def step(self, name: str) -> StepState | None:
        """The current run of step ``name``, if the spec has it."""
        return self.steps.get(name)
