"""A partition owner's log on a real broker: decisions append atomically and read back whole.

The orchestrator's journal and the lock manager's locks topic both append each
input's decision as one record batch and recover by reading their partitions
from offset 0. The case that matters: the *last* batch holds several records
(a release and the grant to the next waiter). Tansu answers ListOffsets
(latest) with the base offset of the last batch plus one, not the offset after
its last record, so a reader that trusts that end offset as exact loses the
tail of the last decision.
"""

from __future__ import annotations

import uuid

import pytest

from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.partitions import GroupWriter, read_partitions
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import LOCKS, ensure_topics
from tests.support.samples import sample_event

pytestmark = pytest.mark.integration


def _group(size: int) -> list[Event]:
    names = ["LockReleased", "LockGranted", "LockQueued"]
    return [sample_event(names[i % len(names)]) for i in range(size)]


async def _settings(kafka_bootstrap: str) -> tuple[Settings, str]:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=2,
        source="test",
    )
    await ensure_topics(settings, [LOCKS])
    return settings, settings.topic(LOCKS.name)


async def test_read_partitions_returns_every_event_when_the_last_batch_holds_several(
    kafka_bootstrap: str,
) -> None:
    settings, topic = await _settings(kafka_bootstrap)
    # partition 0 ends with a two-record decision, partition 1 with a three-record one
    written = {0: [_group(1), _group(2)], 1: [_group(3), _group(1), _group(3)]}
    async with EventProducer(settings) as producer:
        writer = GroupWriter(producer, topic, key=lambda e: e.envelope.key)
        for partition, groups in written.items():
            for group in groups:  # one append per input: one record batch each
                assert await writer.append(partition, [group]) == len(group)

    read: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
    async for partition, offset, event in read_partitions(
        settings, topic, [0, 1], client_id="test-reader"
    ):
        read[partition].append((offset, event.envelope.event_id))

    for partition, groups in written.items():
        ids = [e.envelope.event_id for group in groups for e in group]
        assert [event_id for _, event_id in read[partition]] == ids
        assert [offset for offset, _ in read[partition]] == list(range(len(ids)))
