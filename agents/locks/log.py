"""Appending decisions to a locks partition (atomically per input) and reading it back.

**Atomic decisions.** The events of one input's decision (e.g. ``LockReleased``
then ``LockGranted`` to the next waiter) go into one Kafka record batch, which
the broker appends as a unit: a crash never leaves a release without the
hand-over. Whole decisions are packed into record batches of up to
``max_batch_bytes``. Records are written to an explicit partition, the home
partition of the resource, keyed by the resource.

``EventProducer`` has no record-batch API yet, so this reaches for its aiokafka
producer, as the orchestrator's journal writer does. TODO(streams):
``EventProducer.send_batch`` (then this and ``orchestrator/journal.py`` share it).
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

from .commands import LockDecision

logger = logging.getLogger(__name__)

_Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
_BATCH_OVERHEAD = 128
_RECORD_OVERHEAD = 32
#: Below aiokafka's default max_request_size (1 MiB).
_MAX_BATCH_CAPACITY = 1_000_000


class DecisionWriter:
    """Appends decision groups to locks partitions and waits for the acks (acks=all).

    Args:
        producer: a started producer.
        topic: the full locks topic name.
        max_batch_bytes: how many bytes of whole decisions to pack into one batch.
    """

    def __init__(
        self, producer: EventProducer, topic: str, *, max_batch_bytes: int = 256 * 1024
    ) -> None:
        self._producer = producer
        self._codec = producer.codec
        self.topic = topic
        self._max_batch_bytes = min(max_batch_bytes, _MAX_BATCH_CAPACITY)

    async def append(self, partition: int, groups: Sequence[Sequence[LockDecision]]) -> int:
        """Append ``groups`` (one per input, in order) to ``partition``; return events written.

        Each group lands in one record batch; returns once every batch is acknowledged.
        """
        pending: list[asyncio.Future[RecordMetadata]] = []
        current: list[_Record] = []
        size = count = 0
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

    def _record(self, event: LockDecision) -> _Record:
        headers: list[tuple[str, bytes]] = []
        if event.envelope.traceparent:
            headers.append((TRACEPARENT_HEADER, event.envelope.traceparent.encode("ascii")))
        return event.resource.encode("utf-8"), self._codec.encode(event), headers

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
            "%s lock decisions do not fit one record batch of %s bytes; appending them "
            "record by record to %s[%s] (not atomic)",
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


async def read_partitions(
    settings: Settings, topic: str, partitions: Sequence[int], *, client_id: str
) -> AsyncIterator[tuple[int, int, Event]]:
    """Every event of the given partitions, from offset 0 to the end offset taken at the start.

    A fresh manually assigned consumer (no group); log order per partition.
    Undecodable records are skipped and logged.

    Yields:
        ``(partition, offset, event)``.
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    reader = EventConsumer(
        settings, group_id=None, dead_letters=None, max_records=2000, client_id=client_id
    )
    async with reader:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for delivered in await reader.poll(timeout_ms=100):
                if delivered.offset < ends[delivered.tp]:
                    yield delivered.partition, delivered.offset, delivered.event
            positions = reader.positions()
            remaining = {tp for tp in remaining if positions.get(tp, 0) < ends[tp]}
