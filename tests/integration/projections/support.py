"""Scenarios for the projection tests: real events for every topic, and readers of the results.

Workflows are driven through the pure core (as in ``tests/unit/workflow``) with
the demo registry and fake agents, so their journals are what the orchestrator
would write; locks, agents, cache statistics and poison records are added by
hand. :func:`read_topics` reads every topic back, and :func:`expected_changes`
folds it in one pass, independently of the projector's batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.projections.folds.batch import Changes, Rows, fold_batch
from agentlog.projections.records import Record
from agentlog.projections.tables import Table
from agentlog.schemas.events import (
    Event,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import CATALOGUE, ensure_topics, tasks_topic
from agentlog.workflow import WorkflowState, fold
from tests.unit.projections.scenario import DEMO_KINDS, Produced, scenario

__all__ = ["DEMO_KINDS", "Produced", "scenario"]


def fresh_settings(kafka_bootstrap: str, postgres_dsn: str, *, partitions: int = 2) -> Settings:
    """Settings with a topic prefix no other test uses."""
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn,
        topic_prefix=f"proj{uuid.uuid4().hex[:10]}",
        partitions=partitions,
        source="test",
    )


async def create_topics(settings: Settings) -> None:
    """The catalogue and the demo kinds' task topics."""
    await ensure_topics(settings, [*CATALOGUE, *(tasks_topic(k) for k in DEMO_KINDS)])


async def produce(
    settings: Settings,
    items: Sequence[Produced],
    *,
    chunk: int = 200,
    pause: float = 0.0,
    duplicates: float = 0.0,
    poison_every: int = 0,
    seed: int = 1,
) -> int:
    """Produce ``items`` in order; re-send a share of them (same event ids) and some poison.

    Returns the number of records produced.
    """
    rng = random.Random(seed)
    count = 0
    async with EventProducer(settings) as producer:
        futures = []
        for n, item in enumerate(items):
            topic = settings.topic(item.family)
            futures.append(await producer.enqueue(topic, item.event))
            count += 1
            if duplicates and rng.random() < duplicates:
                futures.append(await producer.enqueue(topic, item.event))
                count += 1
            if poison_every and n % poison_every == poison_every - 1:
                key = item.event.envelope.key.encode()
                futures.append(await producer.send_raw(topic, b"\xc3\x01not-avro", key=key))
                count += 1
            if len(futures) >= chunk:
                await asyncio.gather(*futures)
                futures.clear()
                if pause:
                    await asyncio.sleep(pause)
        await asyncio.gather(*futures)
    return count


async def read_topics(settings: Settings, *, seconds: float = 30.0) -> list[Record]:
    """Every decodable record of every agentlog topic of ``settings``, to the end, in log order."""
    records: list[Record] = []
    async with EventProducer(settings) as producer:
        topics = [settings.topic(s.name) for s in CATALOGUE] + [
            settings.topic(f"tasks.{k}") for k in DEMO_KINDS
        ]
        tps = [TopicPartition(t, p) for t in topics for p in await producer.partitions_for(t)]
    consumer = EventConsumer(settings, group_id=None, dead_letters=None, max_records=5000)
    async with consumer:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async with asyncio.timeout(seconds):
            while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items() if end):
                records.extend(
                    Record(d.topic, d.partition, d.offset, d.timestamp_ms, d.event)
                    for d in await consumer.poll(timeout_ms=100)
                )
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return records


def unique_events(records: Iterable[Record]) -> list[Record]:
    """The first record of each event id."""
    seen: set[str] = set()
    out = []
    for r in records:
        if r.event_id not in seen:
            seen.add(r.event_id)
            out.append(r)
    return out


def expected_changes(records: Sequence[Record]) -> Changes:
    """The read models of ``records`` folded in one pass, from nothing."""
    return fold_batch(unique_events(records), Rows())


def journal_states(records: Sequence[Record]) -> dict[str, WorkflowState]:
    """``agentlog.workflow.fold`` of each workflow's journal: the independent truth."""
    journals: dict[str, list[Event]] = {}
    for r in records:
        if r.topic.endswith(".journal"):
            journals.setdefault(r.event.workflow_id, []).append(r.event)  # type: ignore[union-attr]
    states = {}
    for workflow_id, events in journals.items():
        state = fold(events)
        if state is not None:
            states[workflow_id] = state
    return states


def normalised(table: Table, row: Any) -> dict[str, Any]:
    """A row as a dict with JSON columns parsed, for comparing loaded and folded rows."""
    values = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if f.name in table.json and isinstance(value, str):
            value = json.loads(value)
        elif f.name == "queue":
            value = [(w.request_id, w.requester, w.position, w.queued_at) for w in value]
        values[f.name] = value
    return values


async def load_table(conn: Any, table: Table) -> list[Any]:
    """Every row of ``table`` as its row dataclass."""
    return [table.from_record(r) for r in await conn.fetch(f"SELECT * FROM {table.name}")]


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it, swallowing the cancellation."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
