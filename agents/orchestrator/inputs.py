"""One batch of inputs through the pure core: what to append, publish and forward.

:class:`BatchDecider` feeds each input (a polled event, or a due timer) to
``handle`` with the partition's state and collects the consequences in an
:class:`Outcome`; it performs no I/O. The runner then writes the outcome in the
order the guarantees need: journal (acked), then tasks (acked), then offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from agentlog.schemas.events import (
    LockReleaseRequested,
    LockRequested,
    StepScheduled,
    TaskRequested,
)
from agentlog.streams.consumer import Delivered
from agentlog.workflow import (
    Input,
    JournalEvent,
    TimerFired,
    WorkflowRegistry,
    dispatchable_after,
    handle,
    open_tasks,
    releases_between,
    requests_after,
    task_for,
)

from .breaker import health_signals
from .partition import PartitionState
from .routing import partition_for

logger = logging.getLogger(__name__)

#: The events the input topics carry (the consumer dead-letters anything else).
INPUT_TYPES = frozenset(
    {
        "WorkflowRequested",
        "CancelRequested",
        "SignalSent",
        "TaskCompleted",
        "TaskFailed",
        "TaskProgress",
        "LockGranted",  # copies of the lock manager's decisions on steps' lock requests
        "LockDenied",
    }
)


@dataclass(slots=True)
class Outcome:
    """Everything one batch decided, in input order.

    Attributes:
        journal: partition -> decision groups (one per input that decided something).
        scheduled: ``(partition, StepScheduled)`` in decision order.
        ended: ``(StepScheduled of a task still open, reason)`` of workflows
            that ended in this batch.
        forward: inputs that arrived on the wrong partition -> their home partition.
        health: ``(agent kind, healthy)`` outcomes for the breakers.
        locks: commands for the lock manager (requests of steps' locks, releases
            of locks whose attempt ended), in decision order.
        inputs: inputs fed to the core (timers included).
        decided: inputs that led to journal events.
    """

    journal: dict[int, list[tuple[JournalEvent, ...]]] = field(default_factory=dict)
    scheduled: list[tuple[int, StepScheduled]] = field(default_factory=list)
    ended: list[tuple[StepScheduled, str]] = field(default_factory=list)
    forward: list[tuple[Delivered, int]] = field(default_factory=list)
    health: list[tuple[str, bool]] = field(default_factory=list)
    locks: list[LockRequested | LockReleaseRequested] = field(default_factory=list)
    inputs: int = 0
    decided: int = 0

    @property
    def events(self) -> int:
        """Journal events to append."""
        return sum(len(g) for groups in self.journal.values() for g in groups)


class BatchDecider:
    """Runs inputs through ``handle`` against the owned partitions' states.

    Args:
        registry: the workflow definitions requests may name.
        partitions: how many partitions the co-partitioned topics have.
        clock: the runner's clock (aware UTC); every decision's ``now``.
    """

    def __init__(
        self, registry: WorkflowRegistry, partitions: int, clock: Callable[[], datetime]
    ) -> None:
        self._registry = registry
        self._partitions = partitions
        self._clock = clock

    def decide(
        self, parts: dict[int, PartitionState], deliveries: list[Delivered], outcome: Outcome
    ) -> None:
        """Feed the polled inputs of owned partitions; skip others (not committed)."""
        for delivered in deliveries:
            part = parts.get(delivered.partition)
            if part is None:
                continue
            event = delivered.event
            workflow_id = getattr(event, "workflow_id", None) or ""
            home = partition_for(workflow_id, self._partitions)
            if home != delivered.partition:
                outcome.forward.append((delivered, home))
                continue
            if event.envelope.type in INPUT_TYPES:
                self.feed(part, cast("Input", event), outcome)

    def fire_timers(self, parts: dict[int, PartitionState], outcome: Outcome) -> None:
        """Feed every timer that is due by the runner's clock."""
        now = self._clock()
        for part in parts.values():
            for timer in part.due_timers(now):
                self.feed(part, timer, outcome)

    def feed(self, part: PartitionState, item: Input, outcome: Outcome) -> None:
        """Decide on one input and record its consequences."""
        workflow_id = item.workflow_id or ""
        if workflow_id in part.quarantined:
            return
        outcome.inputs += 1
        before = part.states.get(workflow_id)
        try:
            decision = handle(
                before, item, registry=self._registry, now=self._clock(), idempotency_keys=part.keys
            )
        except Exception as e:  # the core never raises; if it does, one workflow stops, not all
            logger.exception("the core raised deciding on %s", _describe(item))
            part.quarantine(workflow_id, f"the core raised {type(e).__name__}: {e}")
            return
        if not decision.events:
            return
        part.apply(workflow_id, decision)
        outcome.decided += 1
        outcome.journal.setdefault(part.partition, []).append(decision.events)
        outcome.health.extend(health_signals(before, item, decision.events))
        outcome.scheduled.extend(
            (part.partition, e) for e in decision.events if isinstance(e, StepScheduled)
        )
        state = decision.state
        plan = state.plan if state is not None else None
        if plan is not None and plan.locked:  # the core emits lock events for such steps only
            # steps' locks: releases of attempts that ended, requests of locks now awaited,
            # and the tasks of attempts that now hold every lock they need
            outcome.locks.extend(releases_between(before, state))
            outcome.locks.extend(requests_after(state, decision.events))
            outcome.scheduled.extend(
                (part.partition, task.scheduled)
                for task in dispatchable_after(state, decision.events)
            )
        if state is not None and not state.running:
            reason = f"workflow {workflow_id} is {state.status.value}"
            outcome.ended.extend((task, reason) for task in open_tasks(state))

    @staticmethod
    def tasks(
        parts: dict[int, PartitionState], outcome: Outcome
    ) -> list[tuple[int, TaskRequested]]:
        """The tasks to publish: scheduled attempts still running at the end of the batch."""
        found: list[tuple[int, TaskRequested]] = []
        for partition, scheduled in outcome.scheduled:
            state = parts[partition].states.get(scheduled.workflow_id)
            task = task_for(state, scheduled)
            if task is not None:
                found.append((partition, task))
        return found


def _describe(item: Input) -> str:
    if isinstance(item, TimerFired):
        return f"timer {item.timer_id} of workflow {item.workflow_id}"
    return f"{item.envelope.type} {item.envelope.event_id} of workflow {item.workflow_id}"
