"""The decisions for one input, folded into the state as they are made.

``decide`` builds events with a placeholder envelope and hands them to
:meth:`Batch.emit`, which stamps the deterministic envelope (id derived from the
input's event id and the event's position), folds the event with ``evolve`` and
keeps it. Later decisions of the same input therefore see the earlier ones, and
the state ``decide`` ends with is exactly the fold of its events.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agentlog.schemas.events import (
    Envelope,
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
    derived_envelope,
)
from agentlog.workflow.evolve import evolve
from agentlog.workflow.state import WorkflowState
from agentlog.workflow.values import replace

#: ``source`` of every decision.
SOURCE = "orchestrator"

JournalEvent = (
    WorkflowStarted
    | WorkflowRejected
    | StepScheduled
    | StepCompleted
    | StepFailed
    | StepRetryScheduled
    | StepTimedOut
    | LockAwaited
    | LockAcquired
    | SignalReceived
    | WorkflowSucceeded
    | WorkflowFailed
    | WorkflowCancelled
)
"""The events ``decide`` returns (all go to the journal topic)."""

#: Stands in for the envelope until :meth:`Batch.emit` stamps the real one.
PENDING = Envelope(
    event_id="",
    type="",
    occurred_at=datetime(1970, 1, 1, tzinfo=UTC),
    key="",
    correlation_id="",
    source=SOURCE,
)


class Batch:
    """Accumulates the decisions of one input.

    Attributes:
        state: the state after the decisions so far.
        cause: envelope of the input (synthetic for timers).
        now: the decision time: ``occurred_at`` of every decision, base of deadlines.
        events: the decisions so far, stamped.
        loop_checks: loop steps that finished a round and whose ``repeat`` has
            not been evaluated yet (``advance`` evaluates them first).
    """

    def __init__(self, state: WorkflowState | None, cause: Envelope, now: datetime) -> None:
        self.state = state
        self.cause = cause
        self.now = now
        self.events: list[JournalEvent] = []
        self.loop_checks: list[str] = []

    def emit(self, event: JournalEvent) -> None:
        """Stamp ``event``'s envelope, fold it into :attr:`state` and keep it."""
        envelope = derived_envelope(
            self.cause,
            len(self.events),
            type(event).__name__,
            event.workflow_id,
            source=SOURCE,
            occurred_at=self.now,
        )
        if event.envelope is PENDING:  # built for this call, held by no one yet: stamp it
            object.__setattr__(event, "envelope", envelope)
            stamped = event
        else:
            stamped = replace(event, envelope=envelope)
        before = self.state
        self.state = evolve(before, stamped)
        self.events.append(stamped)
        if isinstance(stamped, StepCompleted | StepFailed):
            self._note_round_end(before, stamped.step)

    def running(self) -> WorkflowState | None:
        """The state if the workflow is running, else None."""
        state = self.state
        return state if state is not None and state.running and state.plan is not None else None

    def _note_round_end(self, before: WorkflowState | None, name: str) -> None:
        after = self.state
        if before is None or after is None or after.plan is None:
            return
        if after.plan.steps[name].repeat is None:
            return
        old, new = before.steps[name], after.steps[name]
        if new.status.done and (not old.status.done or new.run != old.run):
            self.loop_checks.append(name)
