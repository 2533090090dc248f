"""Lock benchmark: acquire and hand-over latency, next to a raw aiokafka ping-pong.

The lock manager runs as its own process (``python -m agentlog.agents.locks``),
like the ping-pong's echo process, so both sides get a core. Measured per round:

- **uncontended acquire**: ``acquire()`` of a free lock until the grant is in
  the client's hands (request appended, manager fetch + decide + append, client
  fetch), then ``release()``; p50/p99 over ``--acquire-n`` rounds;
- **contended hand-over**: A holds, B waits in the queue; from A calling
  ``release()`` until B holds the lock (release appended, manager decides
  ``LockReleased`` + ``LockGranted`` in one batch, B fetches its grant);
  p50/p99 over ``--handover-n`` hand-overs;
- **raw ping-pong**: ``tests.bench.pingpong``'s raw aiokafka round trip (two
  hops, no codec) on the same broker in the same round — the floor.

A lock acquire is two hops too (client -> manager -> client), so the ratio
to the raw round trip is the cost of the lock layer.

Run: ``python -m tests.bench.locks`` (starts an embedded Tansu broker) or
``AGENTLOG_KAFKA_BOOTSTRAP=host:port python -m tests.bench.locks``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentlog.agents.locks.client import LockClient
from agentlog.settings import Settings
from agentlog.streams.topics import DEADLETTER, LOCKS, ensure_topics
from tests.bench import pingpong, report

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Round:
    raw_p50_ms: float
    raw_p99_ms: float
    acquire_p50_ms: float
    acquire_p99_ms: float
    handover_p50_ms: float
    handover_p99_ms: float


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * q) - 1)]


async def _acquire_latency(client: LockClient, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        lease = await client.acquire(f"bench:free:{i % 50}", ttl=30, wait=5)
        samples.append((time.perf_counter() - t0) * 1000)
        await lease.release()
    return samples


async def _handover_latency(a: LockClient, b: LockClient, n: int) -> list[float]:
    resource = "bench:contended"
    samples = []
    holder = await a.acquire(resource, ttl=30, wait=5)
    clients = (a, b)
    for i in range(n):
        waiter_client = clients[(i + 1) % 2]
        waiter = asyncio.create_task(waiter_client.acquire(resource, ttl=30, wait=30))
        await asyncio.sleep(0.03)  # let the request reach the queue
        t0 = time.perf_counter()
        release = asyncio.create_task(holder.release())
        holder = await waiter
        samples.append((time.perf_counter() - t0) * 1000)
        await release
    await holder.release()
    return samples


def _start_manager(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    assert settings.kafka_bootstrap is not None
    env = {**os.environ, "AGENTLOG_LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentlog.agents.locks",
                "--kafka",
                settings.kafka_bootstrap,
                "--topic-prefix",
                settings.topic_prefix,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


async def _lock_round(bootstrap: str, args: argparse.Namespace, log: Path) -> dict[str, float]:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
        partitions=3,
        fetch_max_wait_ms=pingpong.FETCH_WAIT_MS,
        source="bench",
    )
    await ensure_topics(settings, [LOCKS, DEADLETTER])
    manager = _start_manager(settings, log)
    try:
        async with (
            LockClient(settings, requester="bench-a", source="bench-a") as a,
            LockClient(settings, requester="bench-b", source="bench-b") as b,
        ):
            # the first acquire waits for the manager's group to form
            warm = await a.acquire("bench:warmup", ttl=30, wait=5)
            await warm.release()
            await _acquire_latency(a, 20)
            acquire = await _acquire_latency(a, args.acquire_n)
            handover = await _handover_latency(a, b, args.handover_n)
    finally:
        manager.send_signal(signal.SIGTERM)
        try:
            manager.wait(30)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait()
    return {
        "acquire_p50_ms": statistics.median(acquire),
        "acquire_p99_ms": _pct(acquire, 0.99),
        "handover_p50_ms": statistics.median(handover),
        "handover_p99_ms": _pct(handover, 0.99),
    }


async def _rounds(bootstrap: str, args: argparse.Namespace, log: Path) -> list[Round]:
    rounds = []
    raw_args = argparse.Namespace(
        latency_n=args.raw_n, throughput_n=2_000, window=100, rounds=1, bootstrap=bootstrap
    )
    for r in range(args.rounds):
        raw = await pingpong.run_variant("raw", bootstrap, raw_args)
        locks = await _lock_round(bootstrap, args, log)
        result = Round(raw.p50_ms, raw.p99_ms, **locks)
        rounds.append(result)
        print(
            f"round {r + 1}/{args.rounds}: "
            f"raw ping-pong p50={raw.p50_ms:.2f} p99={raw.p99_ms:.2f} | "
            f"acquire p50={result.acquire_p50_ms:.2f} p99={result.acquire_p99_ms:.2f} | "
            f"hand-over p50={result.handover_p50_ms:.2f} p99={result.handover_p99_ms:.2f} ms",
            flush=True,
        )
    return rounds


async def amain(args: argparse.Namespace) -> list[Round]:
    import tempfile

    bootstrap = args.bootstrap or os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-locks-") as tmp:
        log = Path(tmp) / "lock-manager.log"
        if bootstrap:
            return await _rounds(bootstrap, args, log)
        from agentlog.streams.embedded.tansu import TansuLauncher

        async with TansuLauncher(Path(tmp)) as broker:
            return await _rounds(broker.bootstrap, args, log)


def summarize(rounds: list[Round]) -> dict[str, Any]:
    keys = asdict(rounds[0]).keys()
    out: dict[str, Any] = {
        k: round(statistics.median(getattr(r, k) for r in rounds), 2) for k in keys
    }
    out["acquire_vs_raw_p50"] = round(out["acquire_p50_ms"] / out["raw_p50_ms"], 2)
    out["handover_vs_raw_p50"] = round(out["handover_p50_ms"] / out["raw_p50_ms"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="broker host:port (default: start an embedded Tansu)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--acquire-n", type=int, default=300, help="uncontended acquires")
    parser.add_argument("--handover-n", type=int, default=200, help="contended hand-overs")
    parser.add_argument("--raw-n", type=int, default=500, help="raw ping-pong round trips")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    return report(summarize(asyncio.run(amain(args))), argv, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
