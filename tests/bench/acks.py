"""Ack benchmark: how long a produce acknowledgement and an offset commit take, per broker.

The orchestrator waits for two kinds of acknowledgement besides its fetches:
the journal append's (before any task goes out) and, in the background, the
commit of its input offsets. This measures both with plain aiokafka, one at a
time with a 2 ms pause between them (an idle client, as in a sequential
workflow):

- ``produce``: ``send_and_wait`` of a 200-byte record, ``acks=all``, linger 0,
  without and (where the broker grants producer ids) with idempotence;
- ``commit``: ``commit()`` of one partition's offset by a consumer of a group.

Run: ``python -m tests.bench.acks`` (Tansu and Apache Kafka, each started
fresh); ``--brokers kafka`` for one; ``--coordinator-linger-ms N`` starts
Kafka with ``group.coordinator.append.linger.ms=N`` (Kafka 4's group
coordinator batches its writes for that long; default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from agentlog.settings import Settings
from agentlog.streams.capabilities import supports_idempotence
from agentlog.streams.topics import TopicSpec, ensure_topics
from tests.bench import report
from tests.bench.fetchwait import add_brokers_option, broker

PAUSE_S = 0.002


async def _produce_p50(bootstrap: str, topic: str, n: int, *, idempotent: bool) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=idempotent
    )
    await producer.start()
    try:
        for _ in range(20):  # warm-up: metadata, connections
            await producer.send_and_wait(topic, b"x" * 200, partition=0)
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, b"x" * 200, partition=i % 6)
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(PAUSE_S)
    finally:
        await producer.stop()
    return statistics.median(samples)


async def _commit_p50(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"acks-{uuid.uuid4().hex[:8]}"
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=5_000)  # joined, assigned
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            await consumer.commit({TopicPartition(topic, i % 6): i + 1})
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(PAUSE_S)
    finally:
        await consumer.stop()
    return statistics.median(samples)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in args.brokers:
        settings = (
            {"group.coordinator.append.linger.ms": str(args.coordinator_linger_ms)}
            if kind == "kafka" and args.coordinator_linger_ms is not None
            else None
        )
        async with broker(kind, settings) as (bootstrap, _):
            topic = f"acks-{uuid.uuid4().hex[:8]}"
            await ensure_topics(
                Settings(kafka_bootstrap=bootstrap, partitions=6, topic_prefix=""),
                [TopicSpec(topic, "k", frozenset())],
            )
            row = {"produce_p50_ms": await _produce_p50(bootstrap, topic, args.n, idempotent=False)}
            if await supports_idempotence(Settings(kafka_bootstrap=bootstrap)):
                row["idempotent_produce_p50_ms"] = await _produce_p50(
                    bootstrap, topic, args.n, idempotent=True
                )
            row["commit_p50_ms"] = await _commit_p50(bootstrap, topic, args.n)
        print(kind, ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
        results[kind] = row
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_brokers_option(parser)
    parser.add_argument("-n", type=int, default=300, help="acknowledgements timed per kind")
    parser.add_argument(
        "--coordinator-linger-ms",
        type=int,
        help="Kafka's group.coordinator.append.linger.ms (default: Kafka's own, 5)",
    )
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    return report(asyncio.run(amain(args)), argv, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
