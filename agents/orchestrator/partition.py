"""The state of one owned partition: every workflow on it, folded from the journal.

On assignment of partition ``p`` the runner reads journal partition ``p`` from
its first offset to its end offset and folds it here (:meth:`PartitionState.
recover`); afterwards it applies each decision as it appends it
(:meth:`PartitionState.apply`), so the in-memory state always equals the fold
of the journal. Snapshots (fold from a stored state instead of offset 0) are
not implemented yet: recovery time grows with the partition's journal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agentlog.schemas.events import Event, WorkflowStarted
from agentlog.workflow import (
    Decision,
    JournalError,
    TimerFired,
    WorkflowState,
    evolve,
    next_timer,
)

from .timers import TimerHeap

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PartitionState:
    """Workflows of one partition, their idempotency keys and timers.

    Attributes:
        partition: the partition number (of requests, journal and responses).
        states: workflow id -> state (terminal workflows too: a repeated
            request for their id must still decide nothing).
        keys: idempotency key -> workflow id, from ``WorkflowStarted``.
        timers: each running workflow's next timer.
        quarantined: workflow id -> why its inputs are skipped (a journal this
            code cannot fold, or a core bug); everything else keeps going.
        journal_events: journal events folded at recovery.
    """

    partition: int
    states: dict[str, WorkflowState] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    timers: TimerHeap = field(default_factory=TimerHeap)
    quarantined: dict[str, str] = field(default_factory=dict)
    journal_events: int = 0

    @classmethod
    def recover(cls, partition: int, journal: Iterable[Event]) -> PartitionState:
        """Fold journal partition ``partition`` (in log order) into a new state."""
        part = cls(partition)
        for event in journal:
            part.fold(event)
        part.arm_timers()
        return part

    def fold(self, event: Event) -> None:
        """Fold one journal event read at recovery (call :meth:`arm_timers` after the last)."""
        self.journal_events += 1
        workflow_id = getattr(event, "workflow_id", None)
        if not isinstance(workflow_id, str) or workflow_id in self.quarantined:
            return
        try:
            state = evolve(self.states.get(workflow_id), event)
        except JournalError as e:
            self.quarantine(workflow_id, f"cannot fold its journal: {e}")
            return
        if state is not None:
            self.states[workflow_id] = state
        if isinstance(event, WorkflowStarted) and event.idempotency_key:
            self.keys[event.idempotency_key] = workflow_id

    def arm_timers(self) -> None:
        """Put every workflow's next timer in the heap (after recovery)."""
        for workflow_id, state in self.states.items():
            if workflow_id not in self.quarantined:
                self.timers.set(workflow_id, next_timer(state))

    def apply(self, workflow_id: str, decision: Decision) -> None:
        """Take the state a decision led to and re-arm the workflow's timer."""
        state = decision.state
        if state is None:
            return
        self.states[workflow_id] = state
        for event in decision.events:
            if isinstance(event, WorkflowStarted) and event.idempotency_key:
                self.keys[event.idempotency_key] = workflow_id
        self.timers.set(workflow_id, next_timer(state))

    def quarantine(self, workflow_id: str, reason: str) -> None:
        """Skip every further input of ``workflow_id`` (logged once, with the reason)."""
        if workflow_id not in self.quarantined:
            logger.error(
                "workflow %s on partition %s quarantined: %s; its inputs are skipped "
                "until an orchestrator that can handle it owns the partition",
                workflow_id,
                self.partition,
                reason,
            )
        self.quarantined[workflow_id] = reason
        self.timers.discard(workflow_id)

    def due_timers(self, now: datetime) -> list[TimerFired]:
        """Timers due at ``now``, removed from the heap (re-armed by :meth:`apply`)."""
        return self.timers.pop_due(now)

    @property
    def running(self) -> int:
        """How many workflows are running."""
        return sum(1 for s in self.states.values() if s.running)
