"""End-to-end benchmark: workflow steps through orchestrator + no-op agent vs raw ping-pong.

Three processes besides this one, all on one broker: the orchestrator
(``python -m agentlog.agents.orchestrator``), a no-op agent pool
(``python -m agentlog.agents.runtime run tests.bench.e2e:NOOP``), and — in
the same run — the raw aiokafka ping-pong of ``tests.bench.pingpong`` as the
floor. One workflow step is one round trip orchestrator -> tasks topic ->
agent -> responses topic -> orchestrator, so its latency compares with a raw
round trip.

- step latency: sequential workflows of ``--steps`` no-op steps, one at a
  time; per step, the time between consecutive ``StepScheduled`` events in the
  journal (the orchestrator's clock); p50/p99.
- throughput: ``--workflows`` such workflows submitted at once; completed
  steps per second from the first ``WorkflowStarted`` to the last
  ``WorkflowSucceeded``.

Run: ``python -m tests.bench.e2e`` (embedded Tansu) or with ``--bootstrap``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import Agent, TaskContext
from agentlog.client import AgentlogClient
from agentlog.schemas.events import (
    JsonValue,
    StepScheduled,
    WorkflowStarted,
    WorkflowSucceeded,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.workflow import workflow
from tests.bench import pingpong

ROOT = Path(__file__).resolve().parents[2]


async def _noop(ctx: TaskContext) -> JsonValue:
    return ctx.input


NOOP = [Agent(kind="noop", handler=_noop, concurrency=64)]


def chain_spec(steps: int) -> dict[str, Any]:
    builder = workflow("bench-chain", version=1)
    for i in range(steps):
        after = [f"s{i - 1}"] if i else []
        builder = builder.step(f"s{i}", agent="noop", input={"i": i}, after=after)
    spec: dict[str, Any] = builder.build().to_json()
    return spec


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


async def _journal(settings: Settings) -> list[Any]:
    topic = settings.topic("journal")
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        events: list[Any] = []
        while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items()):
            events.extend(d.event for d in await consumer.poll(timeout_ms=200))
    return events


async def _run_workflows(
    client: AgentlogClient, spec: dict[str, Any], n: int, concurrent: bool
) -> list[str]:
    ids: list[str] = []
    if concurrent:
        ids = [await client.submit(None, {}, spec=spec) for _ in range(n)]
        for wf in ids:
            await client.wait(wf, timeout=300)
    else:
        for _ in range(n):
            wf = await client.submit(None, {}, spec=spec)
            await client.wait(wf, timeout=60)
            ids.append(wf)
    return ids


def _step_gaps(events: list[Any], ids: set[str]) -> list[float]:
    scheduled: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if isinstance(e, StepScheduled) and e.workflow_id in ids:
            scheduled[e.workflow_id].append(e.envelope.occurred_at.timestamp())
    gaps = []
    for times in scheduled.values():
        times.sort()
        gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
    return sorted(gaps)


def _steps_per_s(events: list[Any], ids: set[str], steps: int) -> float:
    starts = [
        e.envelope.occurred_at.timestamp()
        for e in events
        if isinstance(e, WorkflowStarted) and e.workflow_id in ids
    ]
    ends = [
        e.envelope.occurred_at.timestamp()
        for e in events
        if isinstance(e, WorkflowSucceeded) and e.workflow_id in ids
    ]
    if len(ends) != len(ids):
        raise RuntimeError(f"only {len(ends)} of {len(ids)} workflows succeeded")
    return len(ids) * steps / (max(ends) - min(starts))


async def measure(bootstrap: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, source="bench")
    common = ["--kafka", bootstrap, "--topic-prefix", prefix]
    procs = [
        _spawn(["agentlog.agents.orchestrator", *common], logs / "orchestrator.log"),
        _spawn(
            ["agentlog.agents.runtime", "run", "tests.bench.e2e:NOOP", *common], logs / "agent.log"
        ),
    ]
    try:
        spec = chain_spec(args.steps)
        async with AgentlogClient(settings) as client:
            await _run_workflows(client, spec, 2, concurrent=False)  # warm-up, group joins
            seq = await _run_workflows(client, spec, args.sequential, concurrent=False)
            t0 = time.perf_counter()
            par = await _run_workflows(client, spec, args.workflows, concurrent=True)
            wall = time.perf_counter() - t0
        events = await _journal(settings)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    gaps = _step_gaps(events, set(seq))
    return {
        "step_p50_ms": statistics.median(gaps),
        "step_p99_ms": gaps[int(len(gaps) * 0.99) - 1],
        "steps_per_s": _steps_per_s(events, set(par), args.steps),
        "burst_wall_s": wall,
    }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = args.bootstrap or os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
        if bootstrap:
            return await _both(bootstrap, args, Path(tmp))
        from agentlog.streams.embedded.tansu import TansuLauncher

        async with TansuLauncher(Path(tmp)) as broker:
            return await _both(broker.bootstrap, args, Path(tmp))


async def _both(bootstrap: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    ping_args = argparse.Namespace(latency_n=500, throughput_n=20_000, window=1000)
    raw = await pingpong.run_variant("raw", bootstrap, ping_args)
    print(
        f"raw ping-pong  p50={raw.p50_ms:.2f} ms p99={raw.p99_ms:.2f} ms "
        f"{raw.round_trips_per_s:,.0f} rt/s",
        flush=True,
    )
    e2e = await measure(bootstrap, args, logs)
    print(
        f"workflow steps p50={e2e['step_p50_ms']:.2f} ms p99={e2e['step_p99_ms']:.2f} ms "
        f"{e2e['steps_per_s']:,.0f} steps/s",
        flush=True,
    )
    return {
        "raw": {
            "p50_ms": raw.p50_ms,
            "p99_ms": raw.p99_ms,
            "round_trips_per_s": raw.round_trips_per_s,
        },
        "steps": e2e,
        "p50_overhead_ms": e2e["step_p50_ms"] - raw.p50_ms,
        "throughput_ratio": e2e["steps_per_s"] / raw.round_trips_per_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap", help="broker host:port (default: an embedded Tansu)")
    parser.add_argument("--steps", type=int, default=10, help="no-op steps per workflow")
    parser.add_argument("--sequential", type=int, default=20, help="workflows run one by one")
    parser.add_argument("--workflows", type=int, default=200, help="workflows run at once")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    summary = asyncio.run(amain(args))
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
