"""Fetch wait benchmark: what ``fetch_max_wait_ms`` costs and buys on Tansu and on Apache Kafka.

agentlog picks the consumers' fetch wait per broker (``agentlog.streams.
capabilities.fetch_wait_ms``): 5 ms on a broker that answers a fetch only when
the wait runs out (Tansu), 100 ms on one that answers as soon as data arrives
(Apache Kafka). This measures both waits on both brokers, in one run:

- the raw aiokafka ping-pong of ``tests.bench.pingpong`` (request -> echo
  process -> reply), every consumer with that wait: p50/p99 of one request in
  flight, and round trips per second with ``--window`` in flight;
- idle cost: ``--consumers`` consumers (one process, manual assignment of a
  6-partition topic nobody writes to) polling for ``--idle-s`` seconds: the
  share of a core they use, and the share the broker process uses meanwhile
  (minus what it used idle with no consumer, measured just before).

Run: ``python -m tests.bench.fetchwait`` (both brokers; ``--brokers tansu`` or
``--brokers kafka`` for one). Apache Kafka runs from its Maven Central jars, as
in the test suite (Java 17 needed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agentlog.settings import Settings
from agentlog.streams.topics import TopicSpec, ensure_topics
from tests.bench import pingpong, report
from tests.bench.pingpong import process_cpu_s

WAITS = (5, 100)
BROKERS = ("tansu", "kafka")


@asynccontextmanager
async def broker(
    kind: str, settings: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, int]]:
    """``(bootstrap, pid)`` of a fresh broker of ``kind`` (tansu or kafka).

    ``settings``: Kafka broker configuration (ignored for Tansu).
    """
    if kind == "tansu":
        from agentlog.streams.embedded.tansu import TansuLauncher

        with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
            async with TansuLauncher(Path(tmp)) as tansu:
                yield tansu.bootstrap, tansu.pid
        return
    from tests.support.kafka.broker import start_single

    kafka = await asyncio.to_thread(start_single, settings=settings)
    try:
        yield kafka.bootstrap, kafka.pids[0]
    finally:
        await asyncio.to_thread(kafka.stop)


async def idle_cost(
    bootstrap: str, broker_pid: int, wait_ms: int, args: argparse.Namespace
) -> dict[str, float]:
    """Core shares of ``args.consumers`` idle consumers and of the broker serving them."""
    topic = f"idle.{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, partitions=6, topic_prefix="")
    await ensure_topics(settings, [TopicSpec(topic, "idle", frozenset())])
    t0, b0 = time.perf_counter(), process_cpu_s(broker_pid)
    await asyncio.sleep(2)  # the broker with no consumer
    broker_alone = (process_cpu_s(broker_pid) - b0) / (time.perf_counter() - t0)
    consumers = []
    for _ in range(args.consumers):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, enable_auto_commit=False
        )
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        consumers.append(consumer)

    async def poll(consumer: AIOKafkaConsumer) -> None:
        while True:
            await consumer.getmany(timeout_ms=100)

    tasks = [asyncio.create_task(poll(c)) for c in consumers]
    try:
        await asyncio.sleep(1)  # positions fetched, polling steady
        t0, c0, b0 = time.perf_counter(), time.process_time(), process_cpu_s(broker_pid)
        await asyncio.sleep(args.idle_s)
        wall = time.perf_counter() - t0
        return {
            "consumers_core_share": (time.process_time() - c0) / wall,
            "broker_core_share": (process_cpu_s(broker_pid) - b0) / wall - broker_alone,
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in args.brokers:
        rounds: dict[int, list[dict[str, float]]] = {wait: [] for wait in WAITS}
        async with broker(kind) as (bootstrap, pid):
            for r in range(1, args.rounds + 1):
                for wait in WAITS:
                    ping = argparse.Namespace(
                        latency_n=args.latency_n,
                        throughput_n=args.throughput_n,
                        window=args.window,
                        fetch_wait_ms=wait,
                    )
                    raw = await pingpong.run_variant("raw", bootstrap, ping)
                    idle = await idle_cost(bootstrap, pid, wait, args)
                    row = {
                        "p50_ms": raw.p50_ms,
                        "p99_ms": raw.p99_ms,
                        "round_trips_per_s": raw.round_trips_per_s,
                        **idle,
                    }
                    rounds[wait].append(row)
                    print(
                        f"{kind} round {r}/{args.rounds} wait {wait:>3} ms: "
                        f"p50={row['p50_ms']:.2f} ms p99={row['p99_ms']:.2f} ms "
                        f"{row['round_trips_per_s']:,.0f} rt/s; idle: {args.consumers} consumers "
                        f"{row['consumers_core_share']:.1%} of a core, broker "
                        f"{row['broker_core_share']:.1%}",
                        flush=True,
                    )
        results[kind] = {
            f"wait_{wait}_ms": {k: statistics.median(row[k] for row in rows) for k in rows[0]}
            for wait, rows in rounds.items()
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_brokers_option(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians")
    parser.add_argument("--latency-n", type=int, default=300, help="sequential round trips")
    parser.add_argument("--throughput-n", type=int, default=20_000, help="pipelined round trips")
    parser.add_argument("--window", type=int, default=1000, help="requests in flight")
    parser.add_argument("--consumers", type=int, default=3, help="idle consumers (default 3)")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle seconds measured")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    return report(asyncio.run(amain(args)), argv, args.json)


def add_brokers_option(parser: argparse.ArgumentParser) -> None:
    """``--brokers tansu,kafka`` (default both), checked by argparse."""
    parser.add_argument(
        "--brokers",
        type=_brokers,
        default=list(BROKERS),
        help="comma-separated: tansu, kafka (default both)",
    )


def _brokers(text: str) -> list[str]:
    kinds = text.split(",")
    if unknown := sorted(set(kinds) - set(BROKERS)):
        raise argparse.ArgumentTypeError(
            f"unknown brokers {unknown}; choose from {', '.join(BROKERS)}"
        )
    return kinds


if __name__ == "__main__":
    raise SystemExit(main())
