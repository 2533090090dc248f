"""Ping-pong benchmark: raw aiokafka vs agentlog's streams layer, same broker, same run.

A client sends requests to a request topic; an echo process (a separate OS
process, so both sides get a core) consumes each one and answers on a reply
topic; the client consumes the replies. Two measures per variant:

- latency: one request in flight at a time, p50/p99 of the round trip;
- throughput: up to ``--window`` requests in flight, round trips per second,
  and the CPU time both processes (client and echo) spent per round trip
  meanwhile (the embedded broker's is reported apart). On a shared, noisy
  machine the CPU per round trip is the steadier measure of what a layer
  costs: wall-clock rates swing with the other load, CPU seconds much less.

Variants:

- ``raw``: opaque bytes of the same size as the agentlog event, one plain
  ``AIOKafkaProducer.send()`` per record (idiomatic aiokafka; the baseline);
- ``raw-batch``: the same bytes, but the records the client sends at once and
  each echo poll's answers go through aiokafka's ``create_batch()`` /
  ``send_batch()`` to a known partition (no futures or partitioning per record:
  the cheapest aiokafka can produce, the fair baseline for ``agentlog``);
- ``agentlog``: the client builds a ``TaskRequested`` event per request and
  sends it with ``EventProducer.enqueue``; the echo decodes it
  (``EventConsumer``), answers with a new ``TaskCompleted`` sent with
  ``enqueue``, and the client decodes that. Avro codec, envelopes and keys as
  in production;
- ``agentlog-batch``: the same events, but what the client sends at once and
  each echo poll's answers go through ``EventProducer.enqueue_batch``.

Every process of every variant (client and echo) runs with the garbage
collector threshold agentlog's services set at start (``AGENTLOG_GC_THRESHOLD``,
default 100,000: :mod:`agentlog.tuning`); ``--gc-threshold 0`` measures with
Python's default (700) instead. Decoding allocates a few container objects per
event, so with the default the agentlog variants also pay the collections
their allocations trigger, which the raw variants (bytes only) barely do.

Variants alternate for ``--rounds`` rounds, each round on a fresh embedded
broker and starting with the next variant (so that none is always measured
last, on the most loaded broker); medians are reported, and the throughput
ratios against ``raw`` and ``raw-batch`` of the same run.

Run: ``python -m tests.bench.pingpong`` (starts an embedded Tansu broker) or
``AGENTLOG_KAFKA_BOOTSTRAP=host:port python -m tests.bench.pingpong``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from agentlog.schemas.events import TaskCompleted, TaskRequested, TaskUsage, new_envelope
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import TopicSpec, ensure_topics
from tests.bench import report

FETCH_WAIT_MS = 5
PYTHON_GC_THRESHOLD = 700
VARIANTS = ("raw", "raw-batch", "agentlog", "agentlog-batch")
BATCHED = frozenset({"raw-batch", "agentlog-batch"})


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    p50_ms: float
    p99_ms: float
    round_trips_per_s: float
    #: CPU microseconds per pipelined round trip, client and echo process together.
    cpu_us_per_rt: float
    #: The broker's, when it is our child (the embedded Tansu); else None.
    broker_cpu_us_per_rt: float | None = None
    #: The client's share of ``cpu_us_per_rt`` (the echo has the rest).
    client_cpu_us_per_rt: float | None = None


def task_request(i: int, workflow_id: str) -> TaskRequested:
    return TaskRequested(
        envelope=new_envelope("TaskRequested", workflow_id, source="bench"),
        task_id=str(i),
        workflow_id=workflow_id,
        step="noop",
        attempt=1,
        agent_kind="noop",
        input={"prompt": "ping", "n": i},
        deadline=datetime.now(UTC),
        idempotency_key=f"{workflow_id}:noop:{i}",
        priority=3,
        fencing_tokens={},
    )


def task_completed(req: TaskRequested) -> TaskCompleted:
    return TaskCompleted(
        envelope=new_envelope(
            "TaskCompleted", req.workflow_id, source="bench", causation_id=req.envelope.event_id
        ),
        task_id=req.task_id,
        workflow_id=req.workflow_id,
        step=req.step,
        attempt=req.attempt,
        output={"pong": True},
        usage=TaskUsage(input_tokens=0, output_tokens=0, cost_usd=0.0, latency_ms=0.0),
        agent_id="bench-echo",
    )


# --------------------------------------------------------------------- echo side


async def _raw_echo(
    bootstrap: str, req_topic: str, rep_topic: str, ready: Any, batched: bool, *, wait_ms: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=wait_ms,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(req_topic, 0)])
    ready.set()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batch.values():
                if batched:
                    await _raw_send_batch(producer, rep_topic, [(r.key, r.value) for r in records])
                    continue
                for r in records:
                    await producer.send(rep_topic, r.value, key=r.key)
    finally:
        await producer.stop()
        await consumer.stop()


async def _raw_send_batch(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    """The records as few aiokafka record batches to partition 0 (the topics have one)."""
    builder = producer.create_batch()
    for key, value in records:
        if builder.append(timestamp=None, key=key, value=value) is None:
            await producer.send_batch(builder, topic, partition=0)
            builder = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value)
    if builder.record_count():
        await producer.send_batch(builder, topic, partition=0)


async def _agentlog_echo(
    bootstrap: str, req_topic: str, rep_topic: str, ready: Any, batched: bool, *, wait_ms: int
) -> None:
    settings = _settings(bootstrap, wait_ms)
    async with (
        EventProducer(settings) as producer,
        EventConsumer(settings, group_id=None, dead_letters=None, max_records=1000) as consumer,
    ):
        consumer.assign([TopicPartition(req_topic, 0)])
        ready.set()
        while True:
            replies = []
            for item in await consumer.poll(timeout_ms=100):
                assert isinstance(item.event, TaskRequested)
                replies.append(task_completed(item.event))
            if batched:
                if replies:
                    await producer.enqueue_batch(rep_topic, replies)
                continue
            for reply in replies:
                await producer.enqueue(rep_topic, reply)


def _echo_main(
    variant: str, bootstrap: str, req: str, rep: str, ready: Any, *, wait_ms: int, gc_at: int
) -> None:
    set_gc_threshold(gc_at)
    fn = _raw_echo if variant.startswith("raw") else _agentlog_echo
    asyncio.run(fn(bootstrap, req, rep, ready, variant in BATCHED, wait_ms=wait_ms))


# ------------------------------------------------------------------- client side


def set_gc_threshold(threshold: int) -> None:
    """Collect generation 0 every ``threshold`` allocations (0: Python's default, 700)."""
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold or PYTHON_GC_THRESHOLD, second, third)


def gc_threshold_of(args: argparse.Namespace) -> int:
    """``--gc-threshold``, or for callers without it the services' threshold."""
    threshold: int | None = getattr(args, "gc_threshold", None)
    return Settings().gc_threshold if threshold is None else threshold


def _settings(bootstrap: str, wait_ms: int) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, fetch_max_wait_ms=wait_ms, source="bench")


class Client:
    """Sends requests and matches replies by id; one implementation per variant."""

    send: Callable[[int], Awaitable[None]]
    receive: Callable[[], Awaitable[list[int]]]
    #: Sends many requests at once, if the variant batches (else ``send`` per id).
    send_many: Callable[[range], Awaitable[None]] | None = None


async def _raw_client(
    bootstrap: str, req: str, rep: str, size: int, batched: bool, *, wait_ms: int
) -> tuple[Client, Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=wait_ms,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(rep, 0)])
    pad = b"x" * max(0, size - 8)
    client = Client()

    async def send(i: int) -> None:
        await producer.send(req, i.to_bytes(8, "big") + pad, key=b"wf")

    async def send_many(ids: range) -> None:
        await _raw_send_batch(producer, req, [(b"wf", i.to_bytes(8, "big") + pad) for i in ids])

    async def receive() -> list[int]:
        batch = await consumer.getmany(timeout_ms=100, max_records=1000)
        return [int.from_bytes(r.value[:8], "big") for rs in batch.values() for r in rs]

    client.send, client.receive = send, receive
    if batched:
        client.send_many = send_many

    async def close() -> None:
        await producer.stop()
        await consumer.stop()

    return client, close


async def _agentlog_client(
    bootstrap: str, req: str, rep: str, size: int, batched: bool, *, wait_ms: int
) -> tuple[Client, Any]:
    settings = _settings(bootstrap, wait_ms)
    producer = EventProducer(settings)
    consumer = EventConsumer(settings, group_id=None, dead_letters=None, max_records=1000)
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(rep, 0)])
    workflow_id = "wf"
    client = Client()

    async def send(i: int) -> None:
        await producer.enqueue(req, task_request(i, workflow_id))

    async def send_many(ids: range) -> None:
        await producer.enqueue_batch(req, [task_request(i, workflow_id) for i in ids])

    async def receive() -> list[int]:
        return [int(d.event.task_id) for d in await consumer.poll(timeout_ms=100)]  # type: ignore[union-attr]

    client.send, client.receive = send, receive
    if batched:
        client.send_many = send_many

    async def close() -> None:
        await producer.stop()
        await consumer.stop()

    return client, close


async def _latency(client: Client, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await client.send(i)
        got: list[int] = []
        while i not in got:
            got = await client.receive()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _throughput(client: Client, n: int, window: int, start: int) -> float:
    sent = done = 0
    t0 = time.perf_counter()
    while done < n:
        more = min(n - sent, window - (sent - done))
        if more > 0 and client.send_many is not None:  # everything the window allows, at once
            await client.send_many(range(start + sent, start + sent + more))
        else:
            for i in range(start + sent, start + sent + max(more, 0)):
                await client.send(i)
        sent += max(more, 0)
        done += len(await client.receive())
    return n / (time.perf_counter() - t0)


async def run_variant(
    variant: str, bootstrap: str, args: argparse.Namespace, broker_pid: int | None = None
) -> Result:
    run = uuid.uuid4().hex[:8]
    req, rep = f"bench.{run}.req", f"bench.{run}.rep"
    settings = Settings(kafka_bootstrap=bootstrap, partitions=1, topic_prefix="")
    await ensure_topics(
        settings, [TopicSpec(req, "k", frozenset()), TopicSpec(rep, "k", frozenset())]
    )
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    wait_ms = getattr(args, "fetch_wait_ms", FETCH_WAIT_MS)
    gc_at = gc_threshold_of(args)
    set_gc_threshold(gc_at)  # the client: this process
    echo = ctx.Process(
        target=_echo_main,
        args=(variant, bootstrap, req, rep, ready),
        kwargs={"wait_ms": wait_ms, "gc_at": gc_at},
        daemon=True,
    )
    echo.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("echo process did not start")
        size = len(AvroCodec.default().encode(task_request(0, "wf")))
        make = _raw_client if variant.startswith("raw") else _agentlog_client
        client, close = await make(bootstrap, req, rep, size, variant in BATCHED, wait_ms=wait_ms)
        try:
            await _latency(client, 50)  # warm-up
            samples = await _latency(client, args.latency_n)
            cpu_before, broker_before = _cpu_s(echo.pid), process_cpu_s(broker_pid)
            client_before = time.process_time()
            rate = await _throughput(client, args.throughput_n, args.window, 10_000_000)
            client_us = (time.process_time() - client_before) / args.throughput_n * 1e6
            cpu_us = (_cpu_s(echo.pid) - cpu_before) / args.throughput_n * 1e6
            broker_us = (
                (process_cpu_s(broker_pid) - broker_before) / args.throughput_n * 1e6
                if broker_pid
                else None
            )
        finally:
            await close()
    finally:
        echo.terminate()
        echo.join(10)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    return Result(variant, statistics.median(samples), p99, rate, cpu_us, broker_us, client_us)


def _cpu_s(echo_pid: int | None) -> float:
    """CPU seconds used so far by this process (the client) and the echo process."""
    return time.process_time() + process_cpu_s(echo_pid)


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 for None)."""
    if not pid:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def amain(args: argparse.Namespace) -> list[Result]:
    bootstrap = args.bootstrap or os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    results = []
    for r in range(args.rounds):
        # each round starts with another variant, so none is always measured last
        shift = r % len(args.variants)
        variants = args.variants[shift:] + args.variants[:shift]
        if bootstrap:
            results += await _round(bootstrap, variants, r, args)
            continue
        import tempfile
        from pathlib import Path

        from agentlog.streams.embedded.tansu import TansuLauncher

        # a fresh broker per round: the memory-only Tansu slows down as the records of
        # earlier rounds pile up, which would favour the variants measured first
        with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
            async with TansuLauncher(Path(tmp)) as broker:
                results += await _round(broker.bootstrap, variants, r, args, broker.pid)
    return results


def _busy(res: Result) -> str:
    """How busy each process was while the round trips were pipelined (a core = 100%)."""
    if res.client_cpu_us_per_rt is None:
        return ""
    rate = res.round_trips_per_s / 1e6
    echo = res.cpu_us_per_rt - res.client_cpu_us_per_rt
    shares = f"client {res.client_cpu_us_per_rt * rate:.0%}, echo {echo * rate:.0%}"
    if res.broker_cpu_us_per_rt is not None:
        shares += f", broker {res.broker_cpu_us_per_rt * rate:.0%}"
    return f"; busy: {shares}"


async def _round(
    bootstrap: str,
    variants: list[str],
    r: int,
    args: argparse.Namespace,
    broker_pid: int | None = None,
) -> list[Result]:
    results = []
    for variant in variants:
        res = await run_variant(variant, bootstrap, args, broker_pid)
        broker = (
            f" (+ broker {res.broker_cpu_us_per_rt:.0f})"
            if res.broker_cpu_us_per_rt is not None
            else ""
        )
        print(
            f"round {r + 1}/{args.rounds} {variant:13s} p50={res.p50_ms:.2f} ms "
            f"p99={res.p99_ms:.2f} ms  {res.round_trips_per_s:,.0f} rt/s  "
            f"{res.cpu_us_per_rt:.0f} us CPU/rt{broker}{_busy(res)}",
            flush=True,
        )
        results.append(res)
    return results


def summarize(results: list[Result]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in dict.fromkeys(r.variant for r in results):
        rs = [r for r in results if r.variant == variant]
        out[variant] = {
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "round_trips_per_s": statistics.median(r.round_trips_per_s for r in rs),
            "cpu_us_per_rt": statistics.median(r.cpu_us_per_rt for r in rs),
        }
        broker = [r.broker_cpu_us_per_rt for r in rs if r.broker_cpu_us_per_rt is not None]
        if broker:
            out[variant]["broker_cpu_us_per_rt"] = statistics.median(broker)
    for variant in out.copy():
        for base in ("raw", "raw-batch"):
            if variant != base and base in out:
                rate = out[variant]["round_trips_per_s"] / out[base]["round_trips_per_s"]
                out[variant][f"throughput_vs_{base}"] = rate
                # what the same CPU buys: raw's CPU per round trip over this variant's
                out[variant][f"cpu_efficiency_vs_{base}"] = (
                    out[base]["cpu_us_per_rt"] / out[variant]["cpu_us_per_rt"]
                )
                out[variant][f"p50_overhead_ms_vs_{base}"] = (
                    out[variant]["p50_ms"] - out[base]["p50_ms"]
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="broker host:port (default: start an embedded Tansu)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--latency-n", type=int, default=1000, help="sequential round trips")
    parser.add_argument("--throughput-n", type=int, default=30_000, help="pipelined round trips")
    parser.add_argument("--window", type=int, default=1000, help="requests in flight")
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=FETCH_WAIT_MS,
        help=f"consumers' fetch_max_wait_ms, every variant (default {FETCH_WAIT_MS})",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=Settings().gc_threshold,
        help="garbage collector threshold of every process, every variant (default: the one "
        "agentlog's services set, AGENTLOG_GC_THRESHOLD; 0: Python's default, 700)",
    )
    parser.add_argument(
        "--variants",
        type=lambda text: text.split(","),
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)",
    )
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    summary = summarize(asyncio.run(amain(args)))
    return report({"gc_threshold": args.gc_threshold, **summary}, argv, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
