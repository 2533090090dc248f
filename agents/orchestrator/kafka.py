"""Consumer details the streams layer does not expose yet (one place, to remove later).

``EventConsumer`` has no ``pause`` and does not report its assignors. The
orchestrator must not fetch a half-owned partition, and reports that it
offers the range assignor (``EventConsumer(assignors=...)``). Both helpers
reach into the ``EventConsumer``; they fail loudly if its internals change.

TODO(streams): ``EventConsumer.pause()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.streams.consumer import EventConsumer

_STRATEGY = "_partition_assignment_strategy"  # set from EventConsumer(assignors=...)


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
