"""Appending decisions to the journal (atomically per input) and reading it back.

**Atomic decisions.** Every event of one input's decision goes into the same
Kafka record batch, which a broker appends as a unit: a crash never leaves half
a decision in the journal. That matters because the core treats an input as
handled as soon as *any* of its decisions is folded (``seen_inputs``), so a
torn decision would never be completed. Records are written to an explicit
partition: the partition the input came from, which the runner has checked is
the murmur2 partition of the workflow id. The mechanism is shared with the
lock manager: :mod:`agentlog.streams.partitions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.partitions import GroupWriter, read_partitions
from agentlog.streams.producer import EventProducer
from agentlog.workflow import JournalEvent


class JournalWriter(GroupWriter):
    """Appends decision groups to journal partitions (key: workflow id); acks=all.

    Args:
        producer: a started producer.
        topic: the full journal topic name.
        max_batch_bytes: how many bytes of whole decisions to pack into one batch.
    """

    def __init__(
        self, producer: EventProducer, topic: str, *, max_batch_bytes: int = 256 * 1024
    ) -> None:
        super().__init__(producer, topic, key=_workflow_id, max_batch_bytes=max_batch_bytes)


def _workflow_id(event: JournalEvent) -> str:
    return event.workflow_id


async def read_journal(
    settings: Settings, topic: str, partitions: Sequence[int]
) -> AsyncIterator[tuple[int, Event]]:
    """Every event of the given journal partitions, from offset 0 to the end offset now.

    Yields:
        ``(partition, event)`` pairs, in log order per partition.
    """
    client_id = f"{settings.source}-journal-reader"
    async for partition, _, event in read_partitions(
        settings, topic, partitions, client_id=client_id
    ):
        yield partition, event
