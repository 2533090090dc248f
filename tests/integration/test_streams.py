"""The streams layer on a real broker: every event round-trips, poison goes to the DLQ."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import fastavro
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import TopicPartition

from agentlog.errors import ConnectError, SchemaError
from agentlog.schemas.events import EVENT_TOPIC, DeadLetter, Event, new_envelope
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.consumer import Delivered, EventConsumer
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import CATALOGUE, DEADLETTER, REQUESTS, ensure_topics, tasks_topic
from agentlog.streams.tracing import new_traceparent
from tests.support.samples import all_sample_events, sample_event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[Settings]:
    """Settings with a topic prefix of its own, and the whole catalogue created under it."""
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=2,
        source="test",
    )
    await ensure_topics(s, [*CATALOGUE, tasks_topic("writer")])
    return s


def topic_for(settings: Settings, event: Event) -> str:
    family = EVENT_TOPIC[event.envelope.type]
    return settings.topic("tasks.writer" if family == "tasks" else family)


async def drain(consumer: EventConsumer, want: int, limit_s: float = 30) -> list[Delivered]:
    got: list[Delivered] = []
    async with asyncio.timeout(limit_s):
        while len(got) < want:
            got.extend(await consumer.poll(timeout_ms=200))
    return got


def plain_fastavro_encode(name: str, record: dict[str, object]) -> bytes:
    """Single-object encoding with nothing but fastavro and the .avsc file."""
    schema = fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    fingerprint = fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
    import io

    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return b"\xc3\x01" + bytes.fromhex(fingerprint) + body.getvalue()


async def test_topics_are_created_once(settings: Settings) -> None:
    again = await ensure_topics(settings, [*CATALOGUE, tasks_topic("writer")])
    assert again
    assert not any(again.values())


async def test_every_event_type_round_trips_through_the_broker(settings: Settings) -> None:
    events = all_sample_events()
    topics = sorted({topic_for(settings, e) for e in events})
    async with EventProducer(settings) as producer:
        for event in events:
            await producer.send(topic_for(settings, event), event)
        dlq = DeadLetterWriter(settings, producer)
        async with EventConsumer(
            settings, topics, group_id=f"g-{uuid.uuid4().hex}", dead_letters=dlq
        ) as consumer:
            got = await drain(consumer, len(events))
    by_id = {d.event.envelope.event_id: d.event for d in got}
    assert len(by_id) == len(events)
    for event in events:
        assert by_id[event.envelope.event_id] == event


async def test_plain_fastavro_and_agentlog_interoperate_over_the_broker(
    settings: Settings,
) -> None:
    event = sample_event("WorkflowRequested")
    record = json.loads(json.dumps(AvroCodec.default().to_record(event), default=str))
    # the record as another language would build it: plain types, JSON as text
    plain = plain_fastavro_encode("WorkflowRequested", AvroCodec.default().to_record(event))
    topic = settings.topic(REQUESTS.name)
    async with EventProducer(settings) as producer:
        await producer.send_raw(topic, plain, key=b"wf-plain")
        await producer.send(topic, event)
        await producer.flush()
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        got = await drain(consumer, 2)
    assert [d.event for d in got] == [event, event]

    raw = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await raw.start()
    try:
        raw.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        batch = await raw.getmany(timeout_ms=5000)
        values = [r.value for rs in batch.values() for r in rs]
    finally:
        await raw.stop()
    schema = fastavro.parse_schema(json.loads((SCHEMA_DIR / "WorkflowRequested.avsc").read_text()))
    import io

    for value in values:
        assert value[:2] == b"\xc3\x01"
        decoded = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
        assert decoded["workflow_id"] == record["workflow_id"]


async def test_poison_records_go_to_the_dead_letter_topic(settings: Settings) -> None:
    codec = AvroCodec.default()
    topic = settings.topic(REQUESTS.name)
    good = [sample_event("WorkflowRequested") for _ in range(3)]
    valid = codec.encode(good[0])
    foreign_schema = {"type": "record", "name": "Foreign", "fields": [{"name": "x", "type": "int"}]}
    import io

    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(foreign_schema), {"x": 7})
    poison = {
        "truncated": valid[:6],
        "truncated_body": valid[: len(valid) // 2],
        "bad_magic": b'{"json": true}',
        "unknown_fingerprint": b"\xc3\x01" + struct.pack("<Q", 12345) + body.getvalue(),
        "unexpected_type": codec.encode(sample_event("LockGranted")),
    }
    async with EventProducer(settings) as producer:
        # everything on one partition, so order is known: good, poison…, good, good
        await producer.send_raw(topic, valid, key=b"k", partition=0)
        for name, value in poison.items():
            await producer.send_raw(topic, value, key=name.encode(), partition=0)
        for event in good[1:]:
            await producer.send_raw(topic, codec.encode(event), key=b"k", partition=0)
        await producer.flush()
        dlq = DeadLetterWriter(settings, producer)
        async with EventConsumer(
            settings, [topic], group_id=f"g-{uuid.uuid4().hex}", dead_letters=dlq
        ) as consumer:
            got = await drain(consumer, 3)
            await consumer.commit()
    assert [d.event for d in got] == good
    assert [d.offset for d in got] == [0, 6, 7]

    dlq_topic = settings.topic(DEADLETTER.name)
    async with EventConsumer(settings, group_id=None, dead_letters=None) as reader:
        reader.assign([TopicPartition(dlq_topic, p) for p in range(settings.partitions)])
        letters = [d.event for d in await drain(reader, len(poison))]
    assert all(isinstance(x, DeadLetter) for x in letters)
    by_key = {x.original_key: x for x in letters if isinstance(x, DeadLetter)}
    for offset, (name, value) in enumerate(poison.items(), start=1):
        letter = by_key[name.encode()]
        assert letter.original_topic == topic
        assert letter.original_partition == 0
        assert letter.original_offset == offset
        assert letter.raw == value
        expected = "truncated" if name.startswith("truncated") else name
        assert letter.error_reason == expected, (name, letter.error)


async def test_traceparent_travels_in_headers(settings: Settings) -> None:
    traceparent = new_traceparent()
    base = sample_event("CancelRequested")
    event = type(base)(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "envelope": new_envelope(
                "CancelRequested", base.envelope.key, source="test", traceparent=traceparent
            ),
        }
    )
    topic = settings.topic(REQUESTS.name)
    async with EventProducer(settings) as producer:
        await producer.send(topic, event)
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        [got] = await drain(consumer, 1)
    assert ("traceparent", traceparent.encode()) in got.headers
    assert got.traceparent == traceparent


async def test_committed_offsets_resume_a_group(settings: Settings) -> None:
    topic = settings.topic(REQUESTS.name)
    events = [sample_event("WorkflowRequested") for _ in range(6)]
    group = f"g-{uuid.uuid4().hex}"
    async with EventProducer(settings) as producer:
        for e in events:
            await producer.send(topic, e)
        dlq = DeadLetterWriter(settings, producer)
        async with EventConsumer(settings, [topic], group_id=group, dead_letters=dlq) as first:
            seen = await drain(first, len(events))
            await first.commit()
        more = [sample_event("WorkflowRequested") for _ in range(2)]
        for e in more:
            await producer.send(topic, e)
        async with EventConsumer(settings, [topic], group_id=group, dead_letters=dlq) as second:
            rest = await drain(second, len(more))
    assert {d.event.envelope.event_id for d in seen} == {e.envelope.event_id for e in events}
    assert [d.event for d in rest if d.event in more] == [d.event for d in rest]
    assert {d.event.envelope.event_id for d in rest} == {e.envelope.event_id for e in more}


async def test_producer_detects_idempotence(settings: Settings, broker: str) -> None:
    async with EventProducer(settings) as producer:
        raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
        try:
            await asyncio.wait_for(raw.start(), 10)
            await asyncio.wait_for(raw.send_and_wait(settings.topic(REQUESTS.name), b"x"), 10)
            supported = True
        except Exception:
            supported = False
        finally:
            await raw.stop()
        assert producer.idempotent is supported
        # what we know of the brokers we run: Tansu has no idempotent producer, Kafka has
        expected = {"tansu": False, "kafka": True, "kafka-cluster": True}.get(broker)
        if expected is not None:
            assert producer.idempotent is expected


def with_envelope(event: Event, **changes: object) -> Event:
    """``event`` with envelope fields replaced (its own type and key kept)."""
    envelope = dataclasses.replace(event.envelope, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(event, envelope=envelope)  # type: ignore[type-var]


async def test_send_batch_events_arrive_decoded_and_in_order_per_partition(
    settings: Settings,
) -> None:
    topic = settings.topic(REQUESTS.name)
    traceparent = new_traceparent()
    # several keys over both partitions, and more than one record batch per partition
    events = [
        with_envelope(
            sample_event("WorkflowRequested", workflow_id=f"wf-{i % 5}", input={"pad": "x" * 6000}),
            key=f"wf-{i % 5}",
            traceparent=traceparent if i % 3 == 0 else None,
        )
        for i in range(500)
    ]
    async with EventProducer(settings) as producer:
        acks = await producer.send_batch(topic, events)
        per_partition = Counter[int]()
        for event, ack in zip(events, acks, strict=True):
            per_partition[ack.partition] += len(producer.codec.encode(event))
        assert len(per_partition) == 2
        assert min(per_partition.values()) > producer.max_batch_bytes  # the premise: batches split
        # send() puts each key where send_batch() did
        single = {
            key: (await producer.send(topic, with_envelope(events[i], event_id=str(uuid.uuid4()))))
            for i, key in enumerate(f"wf-{j}" for j in range(5))
        }
        assert await producer.send_batch(topic, []) == []
    assert len(acks) == len(events)
    for event, ack in zip(events, acks, strict=True):
        assert ack.topic == topic
        assert ack.partition == single[event.envelope.key].partition
    for partition in {a.partition for a in acks}:
        offsets = [a.offset for a in acks if a.partition == partition]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))

    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        got = await drain(consumer, len(events) + len(single))
    for partition in range(settings.partitions):
        sent = [e for e, a in zip(events, acks, strict=True) if a.partition == partition]
        received = [d for d in got if d.partition == partition][: len(sent)]
        assert [d.event for d in received] == sent
        assert [d.offset for d in received] == [a.offset for a in acks if a.partition == partition]
        for d in received:
            expected = traceparent if d.event.envelope.traceparent else None
            assert d.traceparent == expected
            assert (("traceparent", traceparent.encode()) in d.headers) is (expected is not None)


async def test_enqueue_batch_queues_a_partitions_events_without_waiting_for_the_broker(
    settings: Settings,
) -> None:
    # aiokafka takes one record batch per partition into a request, one request in flight:
    # a call whose events filled several of aiokafka's default 16 KiB batches waited a
    # produce round trip per extra batch. Up to AGENTLOG_MAX_BATCH_BYTES they are one batch.
    topic = settings.topic(REQUESTS.name)
    events = [
        sample_event("WorkflowRequested", workflow_id="wf-one", input={"pad": "x" * 200})
        for _ in range(1000)
    ]
    async with EventProducer(settings) as producer:
        await producer.send(topic, events[0])  # metadata known, nothing pending
        call = producer.enqueue_batch(topic, events)
        with pytest.raises(StopIteration) as finished:
            call.send(None)  # runs to the end without suspending once
        acks = await finished.value.value
    assert len({a.partition for a in acks}) == 1
    assert [a.offset for a in acks] == list(range(acks[0].offset, acks[0].offset + 1000))
    # the setting is what decides: with aiokafka's 16 KiB the same call suspends
    async with EventProducer(dataclasses.replace(settings, max_batch_bytes=16_384)) as producer:
        await producer.send(topic, events[0])
        call = producer.enqueue_batch(topic, events)
        assert call.send(None) is not None  # waits until its first batch is drained
        call.close()


async def test_send_batch_sends_nothing_when_an_event_does_not_encode(settings: Settings) -> None:
    topic = settings.topic(REQUESTS.name)
    good = sample_event("WorkflowRequested")
    bad = dataclasses.replace(good, priority=2**40)  # not an Avro int
    huge = sample_event("WorkflowRequested", input={"pad": "x" * 1_100_000})
    async with EventProducer(settings) as producer:
        with pytest.raises(SchemaError, match="priority"):
            await producer.send_batch(topic, [good, bad])
        with pytest.raises(MessageSizeTooLargeError, match="WorkflowRequested"):
            await producer.send_batch(topic, [good, huge])
        await producer.send(topic, good)  # a marker: the first record if nothing else was sent
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        got = await drain(consumer, 1)
        assert [d.event for d in got] == [good]
        assert sum((await consumer.end_offsets(parts)).values()) == 1


async def test_send_batch_needs_a_started_producer(settings: Settings) -> None:
    producer = EventProducer(settings)
    with pytest.raises(RuntimeError, match="not started"):
        await producer.send_batch(settings.topic(REQUESTS.name), [sample_event("CancelRequested")])


async def test_unreachable_broker_fails_fast_naming_the_setting() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectError, match=r"AGENTLOG_KAFKA_BOOTSTRAP='127\.0\.0\.1:1'"):
        await ensure_topics(settings)
    assert loop.time() - started < 15


async def test_consumers_fetch_with_the_wait_the_broker_needs(
    settings: Settings, broker: str
) -> None:
    # Tansu answers a fetch only when the wait runs out, Apache Kafka as data arrives
    topic = settings.topic(REQUESTS.name)
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    consumer = EventConsumer(settings, group_id=None, dead_letters=None)
    consumer.assign(tps)  # before start: kept when the wait is only known at start
    async with consumer:
        if broker in ("tansu", "kafka"):
            assert consumer.fetch_wait_ms == (5 if broker == "tansu" else 100)
        assert consumer.assignment() == set(tps)
        async with EventProducer(settings) as producer:
            sent = sample_event("CancelRequested")
            await producer.send(topic, sent)
        assert [d.event for d in await drain(consumer, 1)] == [sent]
    explicit = dataclasses.replace(settings, fetch_max_wait_ms=20)
    async with EventConsumer(explicit, group_id=None, dead_letters=None) as consumer:
        assert consumer.fetch_wait_ms == 20
