"""The state of one owned partition of the locks topic: every resource on it, and timers.

On assignment of partition ``p`` the runner reads it from its first offset to
its end offset and folds it here (:meth:`PartitionState.fold`, then
:meth:`PartitionState.recovered`); afterwards it applies each decision as it
appends it (:meth:`PartitionState.apply`), so the in-memory state always
equals the fold of the partition. Resources whose home partition is another
one (a request produced with a foreign partitioner, before it was forwarded)
are skipped.

**Exact redelivery detection.** The manager decides commands strictly in log
order per partition, so once a command caused a decision, every command
before it was processed. :attr:`PartitionState.decided_through` is the offset
of the last command that caused a decision (folded at recovery by matching
decisions' ``causation_id`` to command event ids, then kept live); the runner
skips commands at or below it. This holds for any history length, even if the
group's committed offsets are lost and the partition is re-read from offset
0, where the per-resource memory of the core (``seen_inputs``, ``finished``)
is bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agentlog.schemas.events import Event

from .commands import LockTimer, command_of, is_decision
from .decide import Decision
from .evolve import evolve
from .state import LockState
from .timers import TimerHeap, next_timer

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PartitionState:
    """Resources of one partition and their timers.

    Attributes:
        partition: the partition number.
        home: resource -> its home partition (murmur2 of the resource).
        resources: resource -> state (free resources too: their ``last_token`` counts).
        timers: each resource's next timer.
        events: records folded at recovery.
        decided_through: offset of the last command that caused a decision (-1: none).
    """

    partition: int
    home: Callable[[str], int]
    resources: dict[str, LockState] = field(default_factory=dict)
    timers: TimerHeap = field(default_factory=TimerHeap)
    events: int = 0
    decided_through: int = -1
    _command_offsets: dict[str, int] = field(default_factory=dict, repr=False)

    def fold(self, event: Event, offset: int = -1) -> None:
        """Fold one record read at recovery (at ``offset``); then :meth:`recovered`."""
        self.events += 1
        envelope = event.envelope
        if command_of(event) is not None:
            self._command_offsets[envelope.event_id] = offset
        elif is_decision(event) and envelope.causation_id is not None:
            cause = self._command_offsets.get(envelope.causation_id)
            if cause is not None and cause > self.decided_through:
                self.decided_through = cause
        resource = getattr(event, "resource", None)
        if not isinstance(resource, str) or self.home(resource) != self.partition:
            return
        state = evolve(self.resources.get(resource), event)
        if state is not None:
            self.resources[resource] = state

    def recovered(self) -> None:
        """After the last :meth:`fold`: arm every resource's timer, drop recovery bookkeeping."""
        self._command_offsets.clear()
        for resource, state in self.resources.items():
            self.timers.set(resource, next_timer(state))

    def decided(self, offset: int) -> None:
        """A command at ``offset`` caused decisions (live)."""
        self.decided_through = max(self.decided_through, offset)

    def apply(self, resource: str, decision: Decision) -> None:
        """Take the state a decision led to and re-arm the resource's timer."""
        if decision.state is None:
            return
        self.resources[resource] = decision.state
        self.timers.set(resource, next_timer(decision.state))

    def due_timers(self, now: datetime) -> list[LockTimer]:
        """Timers due at ``now``, removed from the heap (re-armed by :meth:`apply`)."""
        return self.timers.pop_due(now)

    def rearm(self, resource: str) -> None:
        """Re-arm a resource's timer after an input that decided nothing."""
        self.timers.set(resource, next_timer(self.resources.get(resource)))

    @property
    def held(self) -> int:
        """How many resources have a holder."""
        return sum(1 for s in self.resources.values() if s.holder is not None)

    @property
    def waiting(self) -> int:
        """How many requests wait in queues."""
        return sum(len(s.queue) for s in self.resources.values())
