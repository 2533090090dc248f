"""A partition owner's log: appending decisions atomically per input, and reading it back.

The orchestrator (journal, keyed by workflow id) and the lock manager (locks
topic, keyed by resource) are single writers of the partitions they own, and
both need the same two things from the log:

**Atomic decisions** (:class:`GroupWriter`). Every event of one input's
decision goes into the same Kafka record batch, which a broker appends as a
unit: a crash never leaves half a decision in the log (a release without its
hand-over, a torn workflow decision the core would treat as handled). Whole
decisions are packed into record batches of up to ``max_batch_bytes``, written
to an explicit partition; a single decision larger than a request may be falls
back to one record at a time (logged: not atomic).

**Recovery by fold** (:func:`read_partitions`). Every event of the owned
partitions from offset 0 to the end of the log at the start, in log order.

The end offset a broker reports is not exact everywhere: Tansu answers
ListOffsets (latest) with the base offset of the last record batch plus one,
not the offset after its last record. A reader that dropped records at or past
that offset lost the tail of the last decision (the grant after a release)
there. So the reader keeps every record it polls and stops once its position
reaches the reported end; its polls have no record bound, so that a position
always moves past whole batches (a bound of 2,000 once ended a read inside
the last batch, losing its tail, on Tansu). A record appended after the start
may be folded too, which is as good a prefix of the log
(tests/integration/test_partition_log.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.tracing import HEADER as TRACEPARENT_HEADER

logger = logging.getLogger(__name__)

#: What one appended decision group is made of: ``(key, value, headers)`` records.
_Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
#: Room a record batch needs besides its records (batch header, varints).
_BATCH_OVERHEAD = 128
_RECORD_OVERHEAD = 32


class GroupWriter:
    """Appends decision groups to partitions of one topic and waits for the acks (acks=all).

    Args:
        producer: a started producer.
        topic: the full topic name.
        key: the record key of an event (workflow id, resource).
        max_batch_bytes: how many bytes of whole decisions to pack into one batch.
    """

    def __init__(
        self,
        producer: EventProducer,
        topic: str,
        *,
        key: Callable[[Any], str],
        max_batch_bytes: int = 256 * 1024,
    ) -> None:
        self._producer = producer
        self._codec = producer.codec
        self._key = key
        self.topic = topic
        self._max_batch_bytes = min(max_batch_bytes, producer.max_batch_bytes)

    async def append(self, partition: int, groups: Sequence[Sequence[Event]]) -> int:
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

    def _record(self, event: Event) -> _Record:
        headers: list[tuple[str, bytes]] = []
        if event.envelope.traceparent:
            headers.append((TRACEPARENT_HEADER, event.envelope.traceparent.encode("ascii")))
        return self._key(event).encode("utf-8"), self._codec.encode(event), headers

    async def _send(
        self, partition: int, records: Sequence[_Record]
    ) -> asyncio.Future[RecordMetadata]:
        size = _BATCH_OVERHEAD + sum(_record_size(r) for r in records)
        capacity = min(self._producer.max_batch_bytes, size)
        builder = BatchBuilder(capacity, 0)
        for key, value, headers in records:
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                return await self._send_one_by_one(partition, records)
        # the record batch is built here, so it goes to aiokafka's producer directly
        future: asyncio.Future[RecordMetadata] = await self._producer._require().send_batch(
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
            self._producer.max_batch_bytes,
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


async def read_partitions(
    settings: Settings, topic: str, partitions: Sequence[int], *, client_id: str
) -> AsyncIterator[tuple[int, int, Event]]:
    """Every event of the given partitions, from offset 0 to the end of the log at the start.

    A fresh manually assigned consumer (no group); log order per partition.
    Undecodable records are skipped and logged. Whole record batches are
    returned: the end offset is a lower bound (see the module docstring).

    Yields:
        ``(partition, offset, event)``.
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    # no record bound: a poll cut inside the last batch would end the read there (Tansu)
    reader = EventConsumer(
        settings, group_id=None, dead_letters=None, max_records=None, client_id=client_id
    )
    async with reader:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for delivered in await reader.poll(timeout_ms=100):
                yield delivered.partition, delivered.offset, delivered.event
            positions = reader.positions()
            remaining = {tp for tp in remaining if positions.get(tp, 0) < ends[tp]}
