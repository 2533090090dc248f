"""One batch of locks-topic records through the pure core: what to append and forward.

:class:`BatchDecider` feeds each command of an owned partition (and each due
timer) to ``handle`` with the resource's state and collects the decisions in an
:class:`Outcome`; it performs no I/O. Decisions read back from the topic are
skipped: the runner applied them when it appended them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agentlog.streams.consumer import Delivered

from .commands import LockDecision, LockInput, LockTimer, command_of, is_decision
from .decide import handle
from .partition import PartitionState

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """Everything one batch decided, in input order.

    Attributes:
        groups: partition -> decision groups (one per input that decided something).
        forward: commands that arrived on a partition other than their resource's
            -> the home partition.
        inputs: inputs fed to the core (timers included).
        decided: inputs that led to decisions.
        skipped: commands at or below their partition's ``decided_through`` (redelivered).
        foreign: decision-typed events from a source other than the lock manager
            that are not commands either (ignored).
    """

    groups: dict[int, list[tuple[LockDecision, ...]]] = field(default_factory=dict)
    forward: list[tuple[Delivered, int]] = field(default_factory=list)
    inputs: int = 0
    decided: int = 0
    skipped: int = 0
    foreign: int = 0

    @property
    def events(self) -> int:
        """Decisions to append."""
        return sum(len(g) for groups in self.groups.values() for g in groups)


class BatchDecider:
    """Runs inputs through ``handle`` against the owned partitions' states.

    Args:
        home: resource -> its home partition.
        clock: the runner's clock (aware UTC): every decision's ``now``.
    """

    def __init__(self, home: Callable[[str], int], clock: Callable[[], datetime]) -> None:
        self._home = home
        self._clock = clock

    def decide(
        self, parts: dict[int, PartitionState], deliveries: list[Delivered], outcome: Outcome
    ) -> None:
        """Feed the commands of owned partitions; skip decisions and unowned partitions."""
        for delivered in deliveries:
            part = parts.get(delivered.partition)
            if part is None:
                continue
            event = delivered.event
            if is_decision(event):
                continue
            if delivered.offset <= part.decided_through:
                outcome.skipped += 1
                continue
            command = command_of(event)
            if command is None:
                outcome.foreign += 1
                logger.warning(
                    "ignoring %s %s on %s[%s]@%s: only the lock manager writes decisions",
                    event.envelope.type,
                    event.envelope.event_id,
                    delivered.topic,
                    delivered.partition,
                    delivered.offset,
                )
                continue
            home = self._home(command.resource)
            if home != delivered.partition:
                outcome.forward.append((delivered, home))
                continue
            if self.feed(part, command, outcome):
                part.decided(delivered.offset)

    def fire_timers(self, parts: dict[int, PartitionState], outcome: Outcome) -> None:
        """Feed every timer that is due by the runner's clock."""
        now = self._clock()
        for part in parts.values():
            for timer in part.due_timers(now):
                self.feed(part, timer, outcome, now=now)

    def feed(
        self,
        part: PartitionState,
        item: LockInput,
        outcome: Outcome,
        *,
        now: datetime | None = None,
    ) -> bool:
        """Decide on one input and record its decisions; True if it decided something."""
        outcome.inputs += 1
        resource = item.resource
        try:
            decision = handle(part.resources.get(resource), item, now or self._clock())
        except Exception:  # the core never raises; if it does, one input is lost, not the loop
            logger.exception("the lock core raised deciding on %s for %s", item, resource)
            return False
        if not decision.events:
            if isinstance(item, LockTimer):
                # cannot happen for a due timer; never re-fire it in a loop
                logger.error("timer %s of %s decided nothing; dropped", item.kind, resource)
            return False
        part.apply(resource, decision)
        outcome.decided += 1
        outcome.groups.setdefault(part.partition, []).append(decision.events)
        return True
