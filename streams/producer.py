"""The event producer: acks=all, idempotence when the broker has it, traceparent headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, overload

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata

from agentlog.errors import ConfigError, ConnectError
from agentlog.schemas.events import Envelope, Event
from agentlog.settings import MAX_REQUEST_BYTES, Settings
from agentlog.streams.capabilities import supports_idempotence
from agentlog.streams.codec import AvroCodec
from agentlog.streams.partitioner import default_partitioner, partition_of
from agentlog.streams.tracing import HEADER as TRACEPARENT_HEADER

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_START_TIMEOUT_S = 10.0
# A record's framing beyond its key and value bytes is at most ~40 bytes (varints,
# attributes) and a batch's header 61, so a headerless record whose key and value
# stay under this bound fits a request without computing its exact size.
_CHECK_SIZE_ABOVE = MAX_REQUEST_BYTES - 1024
#: The batches of one enqueue_batch call: each one's ack, and its records as
#: (index in the call, offset in the batch, timestamp).
_Acks = list[tuple["asyncio.Future[RecordMetadata]", list[tuple[int, int, int]]]]


class EventProducer:
    """Encodes events with the Avro codec and appends them to topics.

    ``acks=all`` always. Idempotence (no duplicates from producer retries) is
    used when the broker grants a producer id: detected at :meth:`start`, not
    assumed, because Tansu has no idempotent producer. :attr:`idempotent`
    says what was detected.

    Use as ``async with EventProducer(settings) as producer:``.
    """

    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec | None = None,
        *,
        client_id: str | None = None,
        idempotence: bool | None = None,
    ) -> None:
        """Args:
        settings: where the cluster is, linger, security.
        codec: the Avro codec (a shared default if None).
        client_id: Kafka client id, defaults to ``<source>-producer``.
        idempotence: True/False forces it; None (default) detects it.
        """
        if settings.kafka_bootstrap is None:
            raise ConfigError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                None,
                "no broker address is set",
                "Set AGENTLOG_KAFKA_BOOTSTRAP=host:port, pass --kafka, or start `agentlog dev`.",
            )
        self._settings = settings
        self._codec = codec or AvroCodec.default()
        self._client_id = client_id or f"{settings.source}-producer"
        self._want_idempotence = idempotence
        self._producer: AIOKafkaProducer | None = None
        self.idempotent = False

    async def start(self) -> None:
        """Connect; idempotent. Raises ConnectError naming AGENTLOG_KAFKA_BOOTSTRAP."""
        if self._producer is not None:
            return
        supported = await supports_idempotence(self._settings)
        if self._want_idempotence and not supported:
            raise ConfigError(
                "idempotence",
                True,
                "the broker does not grant idempotent producer ids",
                "Use a broker with idempotent producers (Apache Kafka, Redpanda) "
                "or let agentlog detect it (idempotence=None).",
            )
        self.idempotent = supported if self._want_idempotence is None else self._want_idempotence
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self.idempotent,
            linger_ms=self._settings.linger_ms,
            max_request_size=MAX_REQUEST_BYTES,
            max_batch_size=self._settings.max_batch_bytes,
            request_timeout_ms=30_000,
            partitioner=default_partitioner,
            **self._settings.kafka_client_options(),
        )
        try:
            await asyncio.wait_for(producer.start(), _START_TIMEOUT_S)
        except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as e:
            await producer.stop()
            raise ConnectError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                self._settings.kafka_bootstrap,
                f"{type(e).__name__}: {e}",
                "Check that the broker runs and the address is host:port of a listener.",
            ) from e
        self._producer = producer

    async def stop(self) -> None:
        """Flush pending sends and disconnect; idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def codec(self) -> AvroCodec:
        """The codec this producer encodes with."""
        return self._codec

    @property
    def max_batch_bytes(self) -> int:
        """The most bytes one record batch holds (``AGENTLOG_MAX_BATCH_BYTES``)."""
        return self._settings.max_batch_bytes

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("EventProducer is not started; use `async with` or await start()")
        return self._producer

    async def send(
        self, topic: str, event: Event, *, key: str | None = None, headers: Headers | None = None
    ) -> RecordMetadata:
        """Append one event and wait until the broker acknowledged it (acks=all)."""
        future = await self.enqueue(topic, event, key=key, headers=headers)
        return await future

    async def enqueue(
        self, topic: str, event: Event, *, key: str | None = None, headers: Headers | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one event for sending and return the future of its acknowledgement.

        Pipelining: enqueue many, then await the futures (in order per partition).
        The key defaults to the envelope key (workflow id or resource).
        """
        envelope = event.envelope
        record_key = (key if key is not None else envelope.key).encode()
        future: asyncio.Future[RecordMetadata] = await self._require().send(
            topic,
            self._codec.encode(event),
            key=record_key,
            headers=_with_traceparent(headers, envelope.traceparent),
        )
        return future

    async def send_batch(
        self, topic: str, events: Iterable[Event], *, headers: Headers | None = None
    ) -> Sequence[RecordMetadata]:
        """Append many events and wait until the broker acknowledged all of them.

        The batch form of :meth:`send`; see :meth:`enqueue_batch`.

        Returns:
            The metadata (partition, offset) of each event, in the order given.
        """
        future = await self.enqueue_batch(topic, events, headers=headers)
        return await future

    async def enqueue_batch(
        self, topic: str, events: Iterable[Event], *, headers: Headers | None = None
    ) -> asyncio.Future[Sequence[RecordMetadata]]:
        """Queue many events at once and return one future for all their acknowledgements.

        Equivalent to :meth:`enqueue` for each event in turn (same keys, partitions,
        traceparent headers and per-partition order), at a fraction of the cost per
        event: the records are appended to one Kafka record batch per partition
        (split where a batch reaches the producer's batch size) instead of going
        through the producer's per-record queueing, futures and partitioning.
        Use it wherever many events are produced together (a poll batch's answers,
        a fan-out).

        Every event is encoded before anything is queued, so a :class:`SchemaError`
        sends nothing. Events of one call keep their order within a partition,
        also relative to earlier sends; concurrent calls may interleave, as
        concurrent :meth:`enqueue` calls do. If the broker rejects a batch the
        future fails and the events of other partitions may have been appended,
        as with separate sends.

        Args:
            topic: the full topic name.
            events: the events; each is keyed by its envelope key.
            headers: extra record headers for every event (the traceparent is added).

        Returns:
            A future of the metadata of each event, in the order given (a
            :class:`BatchMetadata`: built when first read, as most callers only
            wait for the acknowledgement).

        Raises:
            SchemaError: an event does not fit its schema (nothing was queued).
            MessageSizeTooLargeError: an event is larger than a request may be.
        """
        producer = self._require()
        encode = self._codec.encode
        records: list[tuple[bytes, bytes, Headers]] = []
        for event in events:
            envelope = event.envelope
            traceparent = envelope.traceparent  # most events carry none: no call then
            record_headers = (
                (_with_traceparent(headers, traceparent) or []) if headers or traceparent else []
            )
            value, key = encode(event), envelope.key.encode()
            if len(value) + len(key) > _CHECK_SIZE_ABOVE or record_headers:
                _check_size(envelope, key, value, record_headers)
            records.append((key, value, record_headers))
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Sequence[RecordMetadata]] = loop.create_future()
        if not records:
            result.set_result(BatchMetadata([], 0))
            return result
        by_partition = _group_by_partition(records, sorted(await self.partitions_for(topic)))
        acks: _Acks = []
        for partition, indexed in by_partition.items():
            builder = producer.create_batch()
            append = builder.append
            placed: list[tuple[int, int, int]] = []  # (index in records, offset in batch, time)
            for index in indexed:
                key, value, record_headers = records[index]
                meta = append(timestamp=None, key=key, value=value, headers=record_headers)
                if meta is None:  # full: submit it and start the next batch
                    acks.append((await _submit(producer, builder, topic, partition), placed))
                    builder, placed = producer.create_batch(), []
                    append = builder.append
                    meta = append(timestamp=None, key=key, value=value, headers=record_headers)
                placed.append((index, meta.offset, meta.timestamp))
            acks.append((await _submit(producer, builder, topic, partition), placed))
        _resolve_when_acked(result, acks, len(records))
        return result

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue already-encoded bytes (dead letters, redrives, tests of poison input)."""
        future: asyncio.Future[RecordMetadata] = await self._require().send(
            topic, value, key=key, headers=headers or None, partition=partition
        )
        return future

    async def flush(self) -> None:
        """Wait until everything queued so far is acknowledged or failed."""
        await self._require().flush()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of a topic (fetching metadata if needed)."""
        parts: Any = await self._require().partitions_for(topic)
        return set(parts or ())


def _with_traceparent(headers: Headers | None, traceparent: str | None) -> Headers | None:
    """The record headers of an event: ``headers`` plus its traceparent, unless already there.

    A traceparent that is not ASCII (no valid one is) gets no header: the
    envelope still carries it, and a producer must not fail on a value any
    client could have put in an event.
    """
    if not traceparent:
        return list(headers) if headers else None
    if headers and any(k == TRACEPARENT_HEADER for k, _ in headers):
        return list(headers)
    try:
        value = traceparent.encode("ascii")
    except UnicodeEncodeError:
        return list(headers) if headers else None
    return [*(headers or ()), (TRACEPARENT_HEADER, value)]


def _group_by_partition(
    records: list[tuple[bytes, bytes, Headers]], partitions: list[int]
) -> dict[int, list[int]]:
    """Indexes of ``records`` per partition, chosen as aiokafka's default partitioner does."""
    if not partitions:
        raise KafkaError("no partitions known for the topic")
    count = len(partitions)
    if count == 1:
        return {partitions[0]: list(range(len(records)))}
    by_partition: dict[int, list[int]] = {}
    for index, (key, _, _) in enumerate(records):
        partition = partitions[partition_of(key, count)]
        by_partition.setdefault(partition, []).append(index)
    return by_partition


async def _submit(
    producer: AIOKafkaProducer, builder: Any, topic: str, partition: int
) -> asyncio.Future[RecordMetadata]:
    builder.close()  # no send() may join it: its records are only those we placed
    future: asyncio.Future[RecordMetadata] = await producer.send_batch(
        builder, topic, partition=partition
    )
    return future


def _check_size(envelope: Envelope, key: bytes, value: bytes, headers: Headers) -> None:
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > MAX_REQUEST_BYTES:
        raise MessageSizeTooLargeError(
            f"{envelope.type} {envelope.event_id} is {size} bytes encoded, more than "
            f"the {MAX_REQUEST_BYTES} bytes of a request; keep large payloads out of events"
        )


def _resolve_when_acked(
    result: asyncio.Future[Sequence[RecordMetadata]], acks: _Acks, total: int
) -> None:
    """Complete ``result`` with per-event metadata once every batch is acknowledged."""
    pending = len(acks)

    def done(future: asyncio.Future[RecordMetadata]) -> None:
        nonlocal pending
        pending -= 1
        # Retrieved even when ``result`` is settled, so no failure is reported as unhandled.
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        elif not pending:
            result.set_result(BatchMetadata(acks, total))

    for future, _ in acks:
        future.add_done_callback(done)


class BatchMetadata(Sequence[RecordMetadata]):
    """What :meth:`AIOKafkaProducer.send` would have reported for each event of a batch call.

    A read-only sequence in the order of the call. The per-event records are
    made on first access: the orchestrator and the agents only wait for the
    acknowledgement, and making them cost about as much as appending the record.
    """

    __slots__ = ("_acks", "_items", "_total")

    def __init__(self, acks: _Acks, total: int) -> None:
        self._acks = acks
        self._total = total
        self._items: list[RecordMetadata] | None = None

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, index: int) -> RecordMetadata: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordMetadata]: ...
    def __getitem__(self, index: int | slice) -> RecordMetadata | list[RecordMetadata]:
        if self._items is None:
            self._items = _per_event(self._acks, self._total)
        return self._items[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BatchMetadata({list(self)!r})"


def _per_event(acks: _Acks, total: int) -> list[RecordMetadata]:
    """The metadata of each record of the batches, in call order."""
    out: list[Any] = [None] * total
    for future, placed in acks:
        base = future.result()
        # -1: the broker kept our CreateTime timestamps (as aiokafka's MessageBatch.done reads it)
        create_time = base.timestamp == -1
        for index, relative, timestamp in placed:
            out[index] = RecordMetadata(
                base.topic,
                base.partition,
                base.topic_partition,
                base.offset + relative,
                timestamp if create_time else base.timestamp,
                0 if create_time else 1,
                base.log_start_offset,
            )
    return out
