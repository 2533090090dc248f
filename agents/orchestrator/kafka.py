"""Consumer options the streams layer does not expose yet (one place, to remove later).

``EventConsumer`` builds its ``AIOKafkaConsumer`` with aiokafka's default
round-robin assignor and has no ``pause``. The orchestrator needs the range
assignor (partition ``p`` of every co-partitioned topic to the same member)
and must not fetch a half-owned partition. Both helpers reach into the
``EventConsumer``; they fail loudly if its internals change.

TODO(streams): ``EventConsumer(assignors=...)`` and ``EventConsumer.pause()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import TopicPartition

from agentlog.streams.consumer import EventConsumer

_STRATEGY = "_partition_assignment_strategy"


def use_range_assignor(consumer: EventConsumer) -> None:
    """Make a not yet started ``consumer`` join its group with the range assignor.

    With the range assignor, every member subscribed to topics of equal
    partition counts gets the same partition numbers of each topic.

    Raises:
        RuntimeError: the consumer's internals changed; add the option to EventConsumer.
    """
    inner = _inner(consumer)
    if not hasattr(inner, _STRATEGY):
        raise RuntimeError(
            "cannot set the range assignor on this aiokafka version; "
            "add an assignors option to EventConsumer"
        )
    setattr(inner, _STRATEGY, (RangePartitionAssignor,))


def assignor_names(consumer: EventConsumer) -> tuple[str, ...]:
    """The names of the assignors ``consumer`` offers its group."""
    return tuple(a.name for a in getattr(_inner(consumer), _STRATEGY))


def pause(consumer: EventConsumer, partitions: Iterable[TopicPartition]) -> None:
    """Stop fetching ``partitions`` until the next rebalance."""
    parts = list(partitions)
    if parts:
        _inner(consumer).pause(*parts)


def _inner(consumer: EventConsumer) -> Any:
    inner = getattr(consumer, "_consumer", None)
    if inner is None:
        raise RuntimeError("EventConsumer no longer wraps an AIOKafkaConsumer in _consumer")
    return inner
