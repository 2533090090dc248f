"""Apache Kafka from its Maven Central jars: one broker, and a 3-node cluster that loses a node.

Self-contained: each test module here starts its own brokers (tests/support/kafka).
Skips with one line when Java, Maven or the jars cannot be had; any other
start-up problem fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.kafka import KafkaBroker, KafkaCluster, KafkaUnavailable, start_single

pytestmark = pytest.mark.integration

EVENTS = 10_000
KEYS = 50
PARTITIONS = 6
WINDOW = 100  # events in flight at once
PACE = 0.05  # seconds between windows: the crash and restart happen mid-stream
KILL_AT = 2_000
RESTART_AT = 4_000
RESTARTED_BY = 8_000


def _skip(error: KafkaUnavailable) -> None:
    pytest.skip(f"Apache Kafka unavailable: {error}")


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    try:
        kafka = start_single()
    except KafkaUnavailable as e:
        _skip(e)
    try:
        yield kafka
    finally:
        kafka.stop()


def _topic() -> str:
    return f"kafka-support-{uuid.uuid4().hex[:12]}"


async def _create_topic(bootstrap: str, topic: str, partitions: int, replicas: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replicas)])
    finally:
        await admin.close()


async def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int, bytes]]:
    """Every record of ``topic``: (partition, offset, value), in log order per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, int, bytes]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batches = await consumer.getmany(timeout_ms=1000)
            records.extend(
                (r.partition, r.offset, r.value or b"") for batch in batches.values() for r in batch
            )
        return records
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------- one broker


async def test_round_trip_through_a_single_broker(broker: KafkaBroker) -> None:
    topic = _topic()
    await _create_topic(broker.bootstrap, topic, partitions=3, replicas=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for i in range(60):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 4}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    per_key: dict[bytes, list[int]] = defaultdict(list)
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, per_key.values())) < 60 and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    assert record.key is not None
                    assert record.value is not None
                    per_key[record.key].append(int(record.value.decode()[1:]))
        await consumer.commit()
    finally:
        await consumer.stop()

    assert dict(per_key) == {f"k{k}".encode(): list(range(k, 60, 4)) for k in range(4)}


async def test_idempotent_producer_on_a_single_broker(broker: KafkaBroker) -> None:
    topic = _topic()
    await _create_topic(broker.bootstrap, topic, partitions=2, replicas=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, f"{i}".encode(), key=f"k{i % 2}".encode())
            for i in range(200)
        ]
        acked = await asyncio.gather(*futures)
    finally:
        await producer.stop()

    offsets: dict[int, list[int]] = defaultdict(list)
    for meta in acked:
        offsets[meta.partition].append(meta.offset)
    assert all(sorted(o) == list(range(len(o))) for o in offsets.values())
    records = await _read_all(broker.bootstrap, topic, 2)
    assert sorted(int(value) for _, _, value in records) == list(range(200))


async def test_paused_broker_answers_after_resume(broker: KafkaBroker) -> None:
    topic = _topic()
    await _create_topic(broker.bootstrap, topic, partitions=1, replicas=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=60_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        pid = broker.node.pid
        assert pid is not None
        broker.pause(0)
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
            pending = await producer.send(topic, b"while paused")
            done, _ = await asyncio.wait({pending}, timeout=1.5)
            assert not done, "a SIGSTOPped broker acknowledged a write"
        finally:
            broker.resume(0)
        meta = await asyncio.wait_for(pending, 30)
        assert meta.offset == 1
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- the cluster


@dataclass
class _Run:
    """What the producer saw: acknowledged event ids, failures, when the broker died."""

    acked: set[int] = field(default_factory=set)
    failed: dict[int, BaseException] = field(default_factory=dict)
    killed_node: int | None = None
    timeline: list[str] = field(default_factory=list)


def _event(i: int) -> tuple[bytes, bytes]:
    """Event ``i``: key ``k<i % KEYS>``, value ``<key>:<sequence within key>:<i>``."""
    key = i % KEYS
    return f"k{key}".encode(), f"k{key}:{i // KEYS}:{i}".encode()


async def _leader_of_partition_0(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            (described,) = await admin.describe_topics([topic])
            leaders = [p["leader"] for p in described["partitions"] if p["partition"] == 0]
            if leaders and leaders[0] >= 0:
                return int(leaders[0])
            assert time.monotonic() < deadline, f"{topic}-0 has no leader"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _produce_through_a_crash(cluster: KafkaCluster, topic: str, run: _Run) -> None:
    victim = cluster.node_index(await _leader_of_partition_0(cluster.bootstrap, topic))

    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=60_000,
        retry_backoff_ms=200,
    )
    await producer.start()
    started = time.monotonic()
    restart: asyncio.Task[None] | None = None
    try:
        for first in range(0, EVENTS, WINDOW):
            if first == RESTARTED_BY and restart is not None:
                await restart
                run.timeline.append(f"{time.monotonic() - started:.1f}s node {victim} serves")
            ids = range(first, min(first + WINDOW, EVENTS))
            futures = []
            for i in ids:
                key, value = _event(i)
                futures.append(await producer.send(topic, value, key=key))
            # The crash and the restart hit while this window's batches are in flight.
            if first == KILL_AT:
                cluster.kill(victim)
                run.killed_node = victim
                run.timeline.append(f"{time.monotonic() - started:.1f}s kill node {victim}")
            if first == RESTART_AT:
                restart = asyncio.create_task(cluster.arestart(victim))
                run.timeline.append(f"{time.monotonic() - started:.1f}s restart node {victim}")
            for i, outcome in zip(
                ids, await asyncio.gather(*futures, return_exceptions=True), strict=True
            ):
                if isinstance(outcome, BaseException):
                    run.failed[i] = outcome
                else:
                    run.acked.add(i)
            await asyncio.sleep(PACE)
        run.timeline.append(f"{time.monotonic() - started:.1f}s all sent")
    finally:
        await producer.stop()
        if restart is not None and not restart.done():
            await restart


async def _wait_for_full_isr(bootstrap: str, topic: str, replicas: int, within: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + within
        while True:
            (described,) = await admin.describe_topics([topic])
            short = [p["partition"] for p in described["partitions"] if len(p["isr"]) < replicas]
            if not short:
                return
            assert time.monotonic() < deadline, f"partitions {short} still lack replicas in ISR"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_cluster_keeps_every_acknowledged_event_through_a_broker_crash() -> None:
    cluster = KafkaCluster(3)
    try:
        await cluster.astart()
    except KafkaUnavailable as e:
        _skip(e)
    homes = [node.spec.home for node in cluster.nodes]
    run = _Run()
    try:
        topic = _topic()
        await _create_topic(cluster.bootstrap, topic, PARTITIONS, replicas=3)
        await _produce_through_a_crash(cluster, topic, run)
        await _wait_for_full_isr(cluster.bootstrap, topic, 3, within=60)
        records = await _read_all(cluster.bootstrap, topic, PARTITIONS)
    finally:
        pids = cluster.pids
        await cluster.astop()

    print("\n".join(run.timeline))  # shown with -s or on failure
    assert run.killed_node is not None
    assert len(pids) == 4, "three nodes plus the restarted one"
    # With RF 3 and min ISR 2 one dead broker must not stop writes.
    assert not run.failed, (
        f"{len(run.failed)} sends failed, e.g. {next(iter(run.failed.values()))!r}"
    )

    ids = [int(value.split(b":")[2]) for _, _, value in records]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert run.acked <= set(ids), f"acknowledged events lost: {sorted(run.acked - set(ids))[:10]}"
    sequences: dict[bytes, list[int]] = defaultdict(list)
    for _, _, value in sorted(records, key=lambda r: (r[0], r[1])):
        key, seq, _ = value.split(b":")
        sequences[key].append(int(seq))
    assert all(seqs == sorted(seqs) for seqs in sequences.values()), "per-key order broken"
    assert all(seqs == list(range(len(seqs))) for seqs in sequences.values())

    # After the cluster's context: no JVM of it left, no files left.
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    leftovers = [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if any(str(home) in arg for arg in proc.info["cmdline"] or [] for home in homes)
    ]
    assert not leftovers, f"java processes of the cluster survived: {leftovers}"
    assert not any(home.exists() for home in homes)
