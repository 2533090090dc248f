"""The event archive, the dead letters and the per-type counts: rows straight from records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentlog.projections.folds.metrics import Rollups
from agentlog.projections.records import Record, event_json, micros, minute_of, timestamp, to_json
from agentlog.schemas.events import CacheStats, DeadLetter


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveRow:
    """One row of ``events``; ``payload`` is the whole event as JSON (see :mod:`..payload`)."""

    event_id: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    type: str
    key: str
    workflow_id: str | None
    occurred_at: datetime
    logged_at: datetime | None
    causation_id: str | None
    correlation_id: str
    payload: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterRow:
    """One row of ``dead_letters``."""

    event_id: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    occurred_at: datetime
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: bytes | None
    original_timestamp: datetime | None
    error_reason: str
    error: str
    raw: bytes
    headers: str
    consumer_group: str


def archive_row(record: Record) -> ArchiveRow:
    """The archive row of a record."""
    event = record.event
    envelope = event.envelope
    workflow_id = getattr(event, "workflow_id", None)
    return ArchiveRow(
        event_id=envelope.event_id,
        topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        type=envelope.type,
        key=envelope.key,
        workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        occurred_at=envelope.occurred_at,
        logged_at=timestamp(record.timestamp_ms),
        causation_id=envelope.causation_id,
        correlation_id=envelope.correlation_id,
        payload=event_json(event),
    )


def archive_columns(records: Sequence[Record]) -> list[list[Any]]:
    """The ``events`` columns of ``records``, one list per column in table order.

    The same values as :func:`archive_row` per record, built column-wise: the
    archive is written for every event, so this is on the projector's hot path.
    """
    ids: list[Any] = []
    topics: list[Any] = []
    partitions: list[Any] = []
    offsets: list[Any] = []
    types: list[Any] = []
    keys: list[Any] = []
    workflows: list[Any] = []
    occurred: list[Any] = []
    logged: list[Any] = []
    causes: list[Any] = []
    correlations: list[Any] = []
    payloads: list[Any] = []
    for record in records:
        event = record.event
        envelope = event.envelope
        ids.append(envelope.event_id)
        topics.append(record.topic)
        partitions.append(record.partition)
        offsets.append(record.offset)
        types.append(envelope.type)
        keys.append(envelope.key)
        workflow_id = getattr(event, "workflow_id", None)
        workflows.append(workflow_id if isinstance(workflow_id, str) else None)
        occurred.append(envelope.occurred_at)
        logged.append(timestamp(record.timestamp_ms))
        causes.append(envelope.causation_id)
        correlations.append(envelope.correlation_id)
        payloads.append(event_json(event))
    return [
        ids,
        topics,
        partitions,
        offsets,
        types,
        keys,
        workflows,
        occurred,
        logged,
        causes,
        correlations,
        payloads,
    ]


def archive_tuples(records: Sequence[Record]) -> list[tuple[Any, ...]]:
    """The ``events`` rows of ``records`` as tuples in table order, ready for ``COPY``.

    The same values as :func:`archive_columns`, row-wise. The projector builds
    them for the next batch while the current one is being written
    (:meth:`~agentlog.projections.runner.Projector._pump`), outside the transaction.
    """
    out: list[tuple[Any, ...]] = []
    append = out.append
    for record in records:
        event = record.event
        envelope = event.envelope
        workflow_id = getattr(event, "workflow_id", None)
        append(
            (
                envelope.event_id,
                record.topic,
                record.partition,
                record.offset,
                envelope.type,
                envelope.key,
                workflow_id if isinstance(workflow_id, str) else None,
                envelope.occurred_at,
                timestamp(record.timestamp_ms),
                envelope.causation_id,
                envelope.correlation_id,
                event_json(event),
            )
        )
    return out


def dead_letter_row(record: Record) -> DeadLetterRow | None:
    """The ``dead_letters`` row of a DeadLetter event; None for any other event."""
    event = record.event
    if not isinstance(event, DeadLetter):
        return None
    return DeadLetterRow(
        event_id=event.envelope.event_id,
        topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        occurred_at=event.envelope.occurred_at,
        original_topic=event.original_topic,
        original_partition=event.original_partition,
        original_offset=event.original_offset,
        original_key=event.original_key,
        original_timestamp=event.original_timestamp,
        error_reason=event.error_reason,
        error=event.error,
        raw=event.raw,
        headers=to_json(
            [
                {"key": h.key, "value": h.value.hex() if h.value is not None else None}
                for h in event.headers
            ]
        ),
        consumer_group=event.consumer_group,
    )


def add_cache_stats(event: CacheStats, rollups: Rollups) -> None:
    """Count a CacheStats window into its agent kind's minute.

    Latency saved is what the hits would have cost as misses: ``hits *
    (miss latency - hit latency)``, never negative.
    """
    saved_ms = max(0.0, event.miss_latency_ms - event.hit_latency_ms) * event.hits
    row = rollups.agent(event.agent_kind or "unknown", minute_of(event.envelope.occurred_at))
    row.cache_hits += event.hits
    row.cache_misses += event.misses
    row.cache_hit_latency_us += micros(event.hit_latency_ms * event.hits / 1000)
    row.cache_miss_latency_us += micros(event.miss_latency_ms * event.misses / 1000)
    row.cache_latency_saved_us += micros(saved_ms / 1000)
    row.cache_tokens_saved += event.tokens_saved
    row.cache_evictions += event.evictions
    row.cache_degraded_windows += 1 if event.backend != "redis" else 0
