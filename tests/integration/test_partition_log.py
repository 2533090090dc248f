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

from agentlog.client import AgentlogClient
from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.partitions import GroupWriter, read_partitions
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import JOURNAL, LOCKS, TopicSpec, ensure_topics
from tests.support.samples import sample_event

pytestmark = pytest.mark.integration


def _group(size: int) -> list[Event]:
    names = ["LockReleased", "LockGranted", "LockQueued"]
    return [sample_event(names[i % len(names)]) for i in range(size)]


async def _settings(
    kafka_bootstrap: str, spec: TopicSpec = LOCKS, partitions: int = 2
) -> tuple[Settings, str]:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=partitions,
        source="test",
    )
    await ensure_topics(settings, [spec])
    return settings, settings.topic(spec.name)


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


async def test_read_partitions_returns_a_last_batch_that_one_poll_cannot_hold_whole(
    kafka_bootstrap: str,
) -> None:
    """Polls are bounded by a record count; one must not end the read inside the last batch."""
    settings, topic = await _settings(kafka_bootstrap)
    # 2,200 records: a poll of at most 2,000 ends inside the last batch (offsets 1,800-2,199)
    groups = [_group(200) for _ in range(9)] + [_group(400)]
    async with EventProducer(settings) as producer:
        writer = GroupWriter(producer, topic, key=lambda e: e.envelope.key)
        for group in groups:
            await writer.append(0, [group])

    ids = [
        event.envelope.event_id
        async for _, _, event in read_partitions(settings, topic, [0], client_id="test-reader")
    ]
    assert ids == [e.envelope.event_id for group in groups for e in group]


async def test_a_clients_history_holds_the_tail_of_a_journal_batch_one_poll_cannot_hold(
    kafka_bootstrap: str,
) -> None:
    """``AgentlogClient.history`` stops at the reported end offset too (``agentlog status``)."""
    settings, journal = await _settings(kafka_bootstrap, JOURNAL, partitions=1)
    workflow_id = str(uuid.uuid4())
    others = [[sample_event("StepScheduled") for _ in range(100)] for _ in range(4)]
    # the last batch: 300 events, this workflow's at its end (offsets 600-699)
    mine = [sample_event("StepScheduled", workflow_id=workflow_id) for _ in range(100)]
    last = [sample_event("StepScheduled") for _ in range(200)] + mine
    async with EventProducer(settings) as producer:
        writer = GroupWriter(producer, journal, key=lambda e: e.workflow_id)
        for group in [*others, last]:
            await writer.append(0, [group])
    async with AgentlogClient(settings) as client:
        history = await client.history(workflow_id)
    assert [e.envelope.event_id for e in history] == [e.envelope.event_id for e in mine]
