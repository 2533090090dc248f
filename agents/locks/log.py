"""Appending decisions to a locks partition (atomically per input) and reading it back.

**Atomic decisions.** The events of one input's decision (e.g. ``LockReleased``
then ``LockGranted`` to the next waiter) go into one Kafka record batch, which
the broker appends as a unit: a crash never leaves a release without the
hand-over. Records are written to an explicit partition, the home partition of
the resource, keyed by the resource. The mechanism is shared with the
orchestrator's journal: :mod:`agentlog.streams.partitions`.
"""

from __future__ import annotations

from agentlog.streams.partitions import GroupWriter, read_partitions
from agentlog.streams.producer import EventProducer

from .commands import LockDecision

__all__ = ["DecisionWriter", "read_partitions"]


class DecisionWriter(GroupWriter):
    """Appends decision groups to locks partitions (key: resource); acks=all.

    Args:
        producer: a started producer.
        topic: the full locks topic name.
        max_batch_bytes: how many bytes of whole decisions to pack into one batch.
    """

    def __init__(
        self, producer: EventProducer, topic: str, *, max_batch_bytes: int = 256 * 1024
    ) -> None:
        super().__init__(producer, topic, key=_resource, max_batch_bytes=max_batch_bytes)


def _resource(event: LockDecision) -> str:
    return event.resource
