"""The event consumer: batched fetch, decode, dead-letter bad records, explicit commits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from agentlog.errors import ConfigError, ConnectError, DecodeError
from agentlog.schemas.events import Event
from agentlog.schemas.slots import install_slot_init
from agentlog.settings import Settings
from agentlog.streams.capabilities import SHORT_FETCH_WAIT_MS, fetch_wait_ms
from agentlog.streams.codec import AvroCodec
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.topics import spec_for
from agentlog.streams.tracing import traceparent_from_headers

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0


@install_slot_init  # one per record read: half the cost of the dataclass __init__
@dataclass(frozen=True, slots=True)
class Delivered:
    """One decoded event with its coordinates in the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]
    event: Event

    @property
    def tp(self) -> TopicPartition:
        """The record's topic-partition."""
        return TopicPartition(self.topic, self.partition)

    @property
    def traceparent(self) -> str | None:
        """The W3C traceparent from the record headers, else from the envelope."""
        return traceparent_from_headers(self.headers) or self.event.envelope.traceparent


class RebalanceHandler(Protocol):
    """Called on group rebalances; both run before fetching resumes."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions newly owned by this member (seek to stored offsets here)."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions about to be taken away (flush and commit here)."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, handler: RebalanceHandler) -> None:
        self._handler = handler

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._handler.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._handler.on_assigned(set(assigned))


class EventConsumer:
    """Consumes agentlog topics in batches and yields decoded events.

    Records that do not decode (truncated, wrong magic byte, unknown schema
    fingerprint, corrupt body) or carry an event type the topic does not allow
    are written to the dead-letter topic with their coordinates, acknowledged,
    and skipped: a poison record never stops the consumer and is never lost.

    Offsets are committed only when the caller says so (:meth:`commit`), so
    state and offsets can move together.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str] = (),
        *,
        group_id: str | None,
        dead_letters: DeadLetterWriter | None,
        codec: AvroCodec | None = None,
        rebalance: RebalanceHandler | None = None,
        auto_offset_reset: str = "earliest",
        max_records: int | None = 500,
        client_id: str | None = None,
        assignors: Sequence[type[AbstractPartitionAssignor]] = (),
    ) -> None:
        """Args:
        settings: cluster address, fetch wait, topic prefix.
        topics: full topic names to subscribe to (with a group), or empty to :meth:`assign`.
        group_id: consumer group, or None for manually assigned partitions.
        dead_letters: where poison records go; None only where losing them is
            acceptable (tools reading the dead-letter topic itself).
        codec: the Avro codec (shared default if None).
        rebalance: callbacks on partition assignment and revocation.
        auto_offset_reset: where a group without committed offsets starts.
        max_records: bound on one :meth:`poll` batch; None returns every
            fetched record, hence whole record batches only (a bound may end a
            poll inside a batch), which readers that stop at a reported end
            offset need (:func:`agentlog.streams.partitions.read_partitions`).
        client_id: Kafka client id.
        assignors: the partition assignors offered to the group (default
            aiokafka's round-robin), e.g. the range assignor for co-partitioned topics.
        """
        if settings.kafka_bootstrap is None:
            raise ConfigError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                None,
                "no broker address is set",
                "Set AGENTLOG_KAFKA_BOOTSTRAP=host:port, pass --kafka, or start `agentlog dev`.",
            )
        self._settings = settings
        self._topics = tuple(topics)
        self._group_id = group_id
        self._dead_letters = dead_letters
        self._codec = codec or AvroCodec.default()
        self._rebalance = rebalance
        self._max_records = max_records
        self._allowed = {t: _allowed_types(settings, t) for t in self._topics}
        self._options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap,
            "client_id": client_id or f"{settings.source}-consumer",
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": auto_offset_reset,
            "max_poll_records": max_records,
            **settings.kafka_client_options(),
        }
        if assignors:
            self._options["partition_assignment_strategy"] = tuple(assignors)
        #: The fetch wait in use; with AGENTLOG_FETCH_MAX_WAIT_MS unset, the broker's
        #: is known at :meth:`start` (until then the short one).
        explicit = settings.fetch_max_wait_ms
        self.fetch_wait_ms = SHORT_FETCH_WAIT_MS if explicit is None else explicit
        self._consumer = AIOKafkaConsumer(fetch_max_wait_ms=self.fetch_wait_ms, **self._options)
        self._started = False
        self._next_offsets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Connect and subscribe; idempotent. Raises ConnectError naming the setting."""
        if self._started:
            return
        wait = await fetch_wait_ms(self._settings)  # ConnectError if unreachable
        if wait != self.fetch_wait_ms:  # not started yet: rebuilt with it
            assigned = self._consumer.assignment()
            await self._consumer.stop()  # never started: closes nothing but its bookkeeping
            self._consumer = AIOKafkaConsumer(fetch_max_wait_ms=wait, **self._options)
            self.fetch_wait_ms = wait
            if assigned:
                self._consumer.assign(list(assigned))
        try:
            await asyncio.wait_for(self._consumer.start(), _START_TIMEOUT_S)
        except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as e:
            await self._consumer.stop()
            raise ConnectError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                self._settings.kafka_bootstrap,
                f"{type(e).__name__}: {e}",
                "Check that the broker runs and the address is host:port of a listener.",
            ) from e
        if self._topics:
            listener = _Listener(self._rebalance) if self._rebalance else None
            self._consumer.subscribe(list(self._topics), listener=listener)
        self._started = True

    async def stop(self) -> None:
        """Leave the group and disconnect (uncommitted progress is redelivered); idempotent."""
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def __aenter__(self) -> EventConsumer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read the given partitions without a group (replay, tools)."""
        parts = list(partitions)
        for tp in parts:
            self._allowed.setdefault(tp.topic, _allowed_types(self._settings, tp.topic))
        self._consumer.assign(parts)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently owns."""
        return set(self._consumer.assignment())

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        """Continue ``tp`` from ``offset`` (e.g. the offset stored with the state)."""
        self._consumer.seek(tp, offset)
        self._next_offsets.pop(tp, None)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Continue the given partitions (all assigned if none) from their first offset."""
        await self._consumer.seek_to_beginning(*partitions)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log-end offset of each partition (for lag and catch-up checks)."""
        result: dict[TopicPartition, int] = await self._consumer.end_offsets(list(partitions))
        return result

    async def poll(self, timeout_ms: int = 100) -> list[Delivered]:
        """Fetch the next batch (at most ``max_records``), decoded and in log order per partition.

        Poison records are dead-lettered before this returns, and the positions
        to commit advance past them.
        """
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
        delivered: list[Delivered] = []
        decode = self._codec.decode
        allowed_by_topic = self._allowed
        for tp, records in batches.items():
            allowed = allowed_by_topic.get(tp.topic)
            for record in records:
                if record.value is None:  # a tombstone on a compacted topic: nothing to decode
                    continue
                # the happy path stays synchronous: one await per poison record, not per record
                try:
                    event = decode(record.value)
                except DecodeError as error:
                    await self._dead_letter(record, error)
                    continue
                if allowed is not None and event.envelope.type not in allowed:
                    await self._dead_letter(record, _unexpected(event, record.topic, allowed))
                    continue
                delivered.append(
                    Delivered(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.timestamp,
                        tuple(record.headers) if record.headers else (),
                        event,
                    )
                )
            if records:
                self._next_offsets[tp] = records[-1].offset + 1
        return delivered

    async def _dead_letter(self, record: ConsumerRecord, error: DecodeError) -> None:
        if self._dead_letters is None:
            logger.warning(
                "skipping undecodable record %s[%s]@%s: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            return
        await self._dead_letters.write(record, error, consumer_group=self._group_id)

    def positions(self) -> dict[TopicPartition, int]:
        """The next offset to read per partition, as far as :meth:`poll` has returned."""
        return dict(self._next_offsets)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-offsets to the group: the given ones, or everything polled so far."""
        if self._group_id is None:
            raise RuntimeError("commit needs a consumer group; store offsets with the state")
        chosen = dict(offsets) if offsets is not None else self.positions()
        if chosen:
            await self._consumer.commit(
                {tp: OffsetAndMetadata(off, "") for tp, off in chosen.items()}
            )


def _unexpected(event: Event, topic: str, allowed: frozenset[str]) -> DecodeError:
    return DecodeError(
        "unexpected_type",
        f"{event.envelope.type} does not belong on {topic} (allowed: {', '.join(sorted(allowed))})",
    )


def _allowed_types(settings: Settings, topic: str) -> frozenset[str] | None:
    spec = spec_for(settings, topic)
    return spec.events if spec is not None else None
