"""Appending decisions to the journal (atomically per input) and reading it back.

**Atomic decisions.** Every event of one input's decision goes into the same
Kafka record batch, which a broker appends as a unit: a crash never leaves half
a decision in the journal. That matters because the core treats an input as
handled as soon as *any* of its decisions is folded (``seen_inputs``), so a
torn decision would never be completed. Whole decisions are packed into record
batches of up to ``max_batch_bytes``; a single decision larger than the
producer's request limit falls back to one record at a time (logged).

Records are written to an explicit partition: the partition the input came
from, which the runner has checked is the murmur2 partition of the workflow id.

``EventProducer`` has no record-batch API yet, so :func:`_raw_producer` reaches
for its aiokafka producer. TODO(streams): ``EventProducer.send_batch``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.tracing import HEADER as TRACEPARENT_HEADER
from agentlog.workflow import JournalEvent

logger = logging.getLogger(__name__)

#: What one appended decision group is made of: ``(key, value, headers)`` records.
_Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
#: Room a record batch needs besides its records (batch header, varints).
_BATCH_OVERHEAD = 128
_RECORD_OVERHEAD = 32
#: Upper bound of a record batch we build: below aiokafka's default max_request_size (1 MiB).
_MAX_BATCH_CAPACITY = 1_000_000


class JournalWriter:
    """Appends decision groups to journal partitions and waits for the acks (acks=all).

    Args:
        producer: a started producer.
        topic: the full journal topic name.
        max_batch_bytes: how many bytes of whole decisions to pack into one batch.
    """

    def __init__(
        self, producer: EventProducer, topic: str, *, max_batch_bytes: int = 256 * 1024
    ) -> None:
        self._producer = producer
        self._codec = producer.codec
        self.topic = topic
        self._max_batch_bytes = min(max_batch_bytes, _MAX_BATCH_CAPACITY)

    async def append(self, partition: int, groups: Sequence[Sequence[JournalEvent]]) -> int:
        """Append ``groups`` (one per input, in order) to ``partition``; return events written.

        Each group lands in one record batch. Returns after the broker
        acknowledged every batch.
        """
        pending: list[asyncio.Future[RecordMetadata]] = []
        current: list[_Record] = []
        size = 0
        count = 0
        for group in groups:
            records = [self._record(event) for event in group]
            group_size = sum(_record_size(r) for r in records)
            count += len(records)
            if current and size + group_size > self._max_batch_bytes:
                pending.append(await self._send(partition, current))
                current, size = [], 0
            current.extend(records)
            size += group_size
        if current:
            pending.append(await self._send(partition, current))
        if pending:
            await asyncio.gather(*pending)
        return count

    def _record(self, event: JournalEvent) -> _Record:
        headers: list[tuple[str, bytes]] = []
        if event.envelope.traceparent:
            headers.append((TRACEPARENT_HEADER, event.envelope.traceparent.encode("ascii")))
        return event.workflow_id.encode("utf-8"), self._codec.encode(event), headers

    async def _send(
        self, partition: int, records: Sequence[_Record]
    ) -> asyncio.Future[RecordMetadata]:
        capacity = min(_MAX_BATCH_CAPACITY, _BATCH_OVERHEAD + sum(_record_size(r) for r in records))
        builder = BatchBuilder(capacity, 0)
        for key, value, headers in records:
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                return await self._send_one_by_one(partition, records)
        future: asyncio.Future[RecordMetadata] = await _raw_producer(self._producer).send_batch(
            builder, self.topic, partition=partition
        )
        return future

    async def _send_one_by_one(
        self, partition: int, records: Sequence[_Record]
    ) -> asyncio.Future[RecordMetadata]:
        logger.warning(
            "a decision of %s records does not fit one record batch of %s bytes; appending "
            "it record by record to %s[%s] (not atomic: store large payloads elsewhere)",
            len(records),
            _MAX_BATCH_CAPACITY,
            self.topic,
            partition,
        )
        futures = [
            await self._producer.send_raw(
                self.topic, value, key=key, headers=headers, partition=partition
            )
            for key, value, headers in records
        ]
        results = await asyncio.gather(*futures)
        done: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        done.set_result(results[-1])
        return done


def _record_size(record: _Record) -> int:
    key, value, headers = record
    return len(key) + len(value) + sum(len(k) + len(v) for k, v in headers) + _RECORD_OVERHEAD


def _raw_producer(producer: EventProducer) -> Any:
    # EventProducer has no record-batch API yet; see the module docstring.
    return producer._require()


async def read_journal(
    settings: Settings, topic: str, partitions: Sequence[int]
) -> AsyncIterator[tuple[int, Event]]:
    """Every event of the given journal partitions, from offset 0 to the end offset now.

    A fresh manually assigned consumer (no group) reads each partition up to
    the end offset taken at the start, in log order per partition. Undecodable
    records are skipped and logged (a journal only this orchestrator writes
    should have none).

    Yields:
        ``(partition, event)`` pairs.
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    reader = EventConsumer(
        settings,
        group_id=None,
        dead_letters=None,
        max_records=2000,
        client_id=f"{settings.source}-journal-reader",
    )
    async with reader:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for delivered in await reader.poll(timeout_ms=100):
                yield delivered.partition, delivered.event
            positions = reader.positions()
            remaining = {tp for tp in remaining if positions.get(tp, 0) < ends[tp]}
