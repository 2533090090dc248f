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
  journal (the orchestrator's clock); p50/p99. The step is also cut into
  three segments, medians over the same steps: ``decide -> task sent`` (the
  ``StepScheduled`` decision to the ``TaskRequested`` record's timestamp: the
  journal append's acknowledgement and the publish), ``task -> answer`` (to
  the ``TaskCompleted`` record: a fetch hop and the agent) and ``answer ->
  next decision`` (a fetch hop and the orchestrator's poll, decode and
  decision). Record timestamps are the producers' clocks in milliseconds, so
  segments are +-1 ms each; all processes share one machine's clock.
- throughput: ``--workflows`` such workflows submitted at once (default
  1,000: as many steps in flight as the raw baseline keeps round trips in
  flight; ``AgentlogClient.submit_many``: one record batch per partition; the client
  then reads nothing until the journal stops growing, so that it takes no
  CPU from the engine); completed steps per second from
  the first ``WorkflowStarted`` to the last ``WorkflowSucceeded``; and the
  CPU time the orchestrator, the agent process and (when it is embedded) the
  broker each spent per step meanwhile, beyond what each burns idle (the
  idle share of a core is measured over 2 s before). The same
  three segments are reported for these steps ("under load"): where a step
  waits when the engine is saturated.

Rounds (``--rounds``, default 3) each measure the raw baseline first, then
the steps with fresh processes and topics (on a fresh embedded broker per
round); medians over rounds are reported.

``--orchestrators N`` runs N orchestrator processes in one consumer group
(the partitions are split among them before anything is measured; their CPU
is reported summed), as a deployment scales the orchestrator out.

Run: ``python -m tests.bench.e2e`` (embedded Tansu) or with ``--bootstrap``;
``--profile DIR`` runs the processes under cProfile
(``orchestrator-<round>.prof``, ``agent-<round>.prof``).
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
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import Agent, TaskContext
from agentlog.client import AgentlogClient
from agentlog.schemas.events import (
    JsonValue,
    StepScheduled,
    TaskCompleted,
    TaskRequested,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowSucceeded,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import Delivered, EventConsumer
from agentlog.workflow import workflow
from tests.bench import pingpong, report

ROOT = Path(__file__).resolve().parents[2]
_IDLE_S = 2.0


#: Round trips the raw baseline keeps in flight; by default as many workflows run at once.
RAW_WINDOW = 1000


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


def _spawn(args: list[str], log: Path, profile: Path | None = None) -> subprocess.Popen[bytes]:
    prof = ["cProfile", "-o", str(profile), "-m"] if profile else []
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *prof, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


async def _read(settings: Settings, name: str) -> list[Delivered]:
    """Every record of topic ``name`` now (positions pass whole batches: see streams.partitions)."""
    topic = settings.topic(name)
    # no record bound: polls return whole batches, so a position past the reported end
    # (on Tansu the last batch's base offset + 1) has read that batch whole
    async with EventConsumer(
        settings, group_id=None, dead_letters=None, max_records=None
    ) as consumer:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        found: list[Delivered] = []
        while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items()):
            found.extend(await consumer.poll(timeout_ms=200))
    return found


async def _journal(settings: Settings) -> list[Any]:
    return [d.event for d in await _read(settings, "journal")]


def _segments(
    journal: list[Any], tasks: list[Delivered], answers: list[Delivered], ids: set[str]
) -> dict[str, float]:
    """Medians (ms) of the three segments of a step; see the module docstring."""
    decided: dict[tuple[str, str], float] = {}
    next_decision: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in journal:
        if isinstance(e, StepScheduled) and e.workflow_id in ids:
            at = e.envelope.occurred_at.timestamp() * 1000
            decided[e.workflow_id, e.step] = at
            next_decision[e.workflow_id].append((at, e.step))
    sent = {
        (d.event.workflow_id, d.event.step): float(d.timestamp_ms)
        for d in tasks
        if isinstance(d.event, TaskRequested) and d.event.workflow_id in ids
    }
    answered = {
        (d.event.workflow_id, d.event.step): float(d.timestamp_ms)
        for d in answers
        if isinstance(d.event, TaskCompleted) and d.event.workflow_id in ids
    }
    cut: dict[str, list[float]] = defaultdict(list)
    for wf, scheduled in next_decision.items():
        scheduled.sort()
        for (_, step), (at_next, _) in itertools.pairwise(scheduled):
            key = (wf, step)
            if key in sent and key in answered:
                cut["decide_to_task_ms"].append(sent[key] - decided[key])
                cut["task_to_answer_ms"].append(answered[key] - sent[key])
                cut["answer_to_decision_ms"].append(at_next - answered[key])
    return {name: statistics.median(values) for name, values in cut.items()}


async def _run_workflows(
    client: AgentlogClient, spec: dict[str, Any], n: int, concurrent: bool
) -> list[str]:
    ids: list[str] = []
    if concurrent:
        # submitted at once, as one record batch per partition (one submit() each, even
        # concurrently, costs the client ~2 ms of CPU per request, which it would take from
        # the engine on a small machine), then no reading until the journal stops growing:
        # a client folding the journal live takes a third of a core from the engine too
        ids = await client.submit_many(None, [{} for _ in range(n)], spec=spec)
        await _until_journal_still(client.settings, timeout_s=300)
        await client.wait_all(ids, timeout=300)
    else:
        for _ in range(n):
            wf = await client.submit(None, {}, spec=spec)
            await client.wait(wf, timeout=60)
            ids.append(wf)
    return ids


async def _until_journal_still(settings: Settings, timeout_s: float, still_s: float = 1.0) -> None:
    """Until the journal's end offsets have not moved for ``still_s`` (reads no record)."""
    topic = settings.topic("journal")
    parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
    deadline = time.monotonic() + timeout_s
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(parts)
            if ends != last:
                last, since = ends, time.monotonic()
            elif time.monotonic() - since >= still_s:
                return
            await asyncio.sleep(0.1)


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
        ended = {e.workflow_id for e in events if isinstance(e, WorkflowSucceeded | WorkflowFailed)}
        failures = Counter(
            f"{e.step}: {e.error_kind}: {e.message}"
            for e in events
            if isinstance(e, WorkflowFailed) and e.workflow_id in ids
        )
        raise RuntimeError(
            f"only {len(ends)} of {len(ids)} workflows succeeded; failures: {dict(failures)}; "
            f"{len(ids - ended)} with no end in the journal as read"
        )
    return len(ids) * steps / (max(ends) - min(starts))


async def measure(
    bootstrap: str,
    args: argparse.Namespace,
    logs: Path,
    round_no: int = 1,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix, source="bench", partitions=args.partitions
    )
    os.environ["AGENTLOG_PARTITIONS"] = str(args.partitions)  # the topics the processes create
    common = ["--kafka", bootstrap, "--topic-prefix", prefix]
    prof = Path(args.profile) if args.profile else None
    names = [f"orchestrator-{round_no}{suffix}" for suffix in _suffixes(args.orchestrators)]
    orchestrators = [
        _spawn(
            ["agentlog.agents.orchestrator", *common],
            logs / f"{name}.log",
            prof / f"{name}.prof" if prof else None,
        )
        for name in names
    ]
    agent = _spawn(
        ["agentlog.agents.runtime", "run", "tests.bench.e2e:NOOP", *common],
        logs / f"agent-{round_no}.log",
        prof / f"agent-{round_no}.prof" if prof else None,
    )
    procs = [*orchestrators, agent]
    # whose CPU is measured: the processes, and the broker when it is our child
    pids = [p.pid for p in procs] + ([broker_pid] if broker_pid else [])
    who = ["orchestrator"] * len(orchestrators) + ["agent"] + (["broker"] if broker_pid else [])
    try:
        spec = chain_spec(args.steps)
        async with AgentlogClient(settings) as client:
            await _run_workflows(client, spec, 2, concurrent=False)  # warm-up, group joins
            if len(orchestrators) > 1:  # until the group has split the partitions among them
                await _until_split([logs / f"{name}.log" for name in names], args.partitions)
                await _run_workflows(client, spec, 2, concurrent=False)
            seq = await _run_workflows(client, spec, args.sequential, concurrent=False)
            idle_before = [pingpong.process_cpu_s(pid) for pid in pids]
            await asyncio.sleep(_IDLE_S)  # what the processes burn with nothing to do
            cpu_before = [pingpong.process_cpu_s(pid) for pid in pids]
            t0 = time.perf_counter()
            par = await _run_workflows(client, spec, args.workflows, concurrent=True)
            wall = time.perf_counter() - t0
            cpu_after = [pingpong.process_cpu_s(pid) for pid in pids]
        events = await _journal(settings)
        tasks = await _read(settings, "tasks.noop")
        answers = await _read(settings, "responses")
    finally:
        for p in procs:
            p.terminate()  # SIGTERM: graceful stop (and the profiles are written)
        for p in procs:
            p.wait(60)
    gaps = _step_gaps(events, set(seq))
    result: dict[str, Any] = {
        "step_p50_ms": statistics.median(gaps),
        "step_p99_ms": gaps[int(len(gaps) * 0.99) - 1],
        "steps_per_s": _steps_per_s(events, set(par), args.steps),
        "burst_wall_s": wall,
        **_segments(events, tasks, answers, set(seq)),
        # the same segments under load: where a step waits while every workflow runs at once
        **{f"burst_{k}": v for k, v in _segments(events, tasks, answers, set(par)).items()},
    }
    cpu: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # per role: idle share, us/step
    for i, role in enumerate(who):
        idle0, idle1, before, after = idle_before[i], cpu_before[i], cpu_before[i], cpu_after[i]
        idle_rate = (idle1 - idle0) / _IDLE_S
        # CPU seconds per step beyond what the process burns idle (polling every 5 ms)
        per_step = (after - before - idle_rate * wall) / (args.workflows * args.steps)
        cpu[role][0] += idle_rate
        cpu[role][1] += per_step * 1e6
    for role, (idle_share, us_per_step) in cpu.items():  # orchestrators summed
        result[f"{role}_idle_cpu_share"] = idle_share
        result[f"{role}_cpu_us_per_step"] = us_per_step
    return result


def _suffixes(count: int) -> list[str]:
    return [""] if count == 1 else [f"-{k}" for k in range(1, count + 1)]


async def _until_split(logs: list[Path], partitions: int, timeout_s: float = 60) -> None:
    """Until each orchestrator's last assignment (from its log) is its share of all partitions."""
    deadline = time.monotonic() + timeout_s
    owned: list[list[int]] = []
    while time.monotonic() < deadline:
        owned = []
        for log in logs:
            lines = [ln for ln in log.read_text().splitlines() if "assigned partitions" in ln]
            owned.append(json.loads(lines[-1].rsplit("partitions", 1)[1]) if lines else [])
        flat = sorted(p for parts in owned for p in parts)
        if all(owned) and flat == list(range(partitions)):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the orchestrators did not split the {partitions} partitions: {owned}")


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = args.bootstrap or os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
        logs = Path(args.logs or tmp)
        rounds = []
        for r in range(1, args.rounds + 1):
            if bootstrap:
                rounds.append(await _round(bootstrap, args, logs, r))
                continue
            from agentlog.streams.embedded.tansu import TansuLauncher

            # a fresh broker per round: the memory-only Tansu slows down as the topics of
            # earlier rounds pile up, which would make later rounds incomparable
            (Path(tmp) / f"broker-{r}").mkdir()
            async with TansuLauncher(Path(tmp) / f"broker-{r}") as broker:
                rounds.append(await _round(broker.bootstrap, args, logs, r, broker.pid))
    return _summary([raw for raw, _ in rounds], [e2e for _, e2e in rounds])


async def _round(
    bootstrap: str, args: argparse.Namespace, logs: Path, r: int, broker_pid: int | None = None
) -> tuple[pingpong.Result, dict[str, Any]]:
    """One round: the raw round trip first, then the workflow steps, on one broker."""
    ping_args = argparse.Namespace(latency_n=500, throughput_n=20_000, window=RAW_WINDOW)
    raw = await pingpong.run_variant("raw", bootstrap, ping_args)
    print(
        f"round {r}/{args.rounds} raw ping-pong  p50={raw.p50_ms:.2f} ms "
        f"p99={raw.p99_ms:.2f} ms {raw.round_trips_per_s:,.0f} rt/s",
        flush=True,
    )
    e2e = await measure(bootstrap, args, logs, r, broker_pid)
    cpu = ", ".join(
        f"{who} {e2e[f'{who}_cpu_us_per_step']:.0f} (idle {e2e[f'{who}_idle_cpu_share']:.0%})"
        for who in ("orchestrator", "agent", "broker")
        if f"{who}_cpu_us_per_step" in e2e
    )
    print(
        f"round {r}/{args.rounds} workflow steps p50={e2e['step_p50_ms']:.2f} ms "
        f"p99={e2e['step_p99_ms']:.2f} ms {e2e['steps_per_s']:,.0f} steps/s"
        + (f"; CPU us/step beyond idle: {cpu}" if cpu else ""),
        flush=True,
    )
    for prefix, label in (("", "step segments"), ("burst_", "under load")):
        if f"{prefix}decide_to_task_ms" in e2e:
            print(
                f"round {r}/{args.rounds} {label} (p50): decide -> task sent "
                f"{e2e[f'{prefix}decide_to_task_ms']:.2f} ms, task -> answer "
                f"{e2e[f'{prefix}task_to_answer_ms']:.2f} ms, answer -> next decision "
                f"{e2e[f'{prefix}answer_to_decision_ms']:.2f} ms",
                flush=True,
            )
    return raw, e2e


def _summary(raws: list[pingpong.Result], steps: list[dict[str, Any]]) -> dict[str, Any]:
    raw_summary = {
        "p50_ms": statistics.median(r.p50_ms for r in raws),
        "p99_ms": statistics.median(r.p99_ms for r in raws),
        "round_trips_per_s": statistics.median(r.round_trips_per_s for r in raws),
    }
    step_summary = {
        key: statistics.median(values)
        for key in steps[0]
        if (values := [s[key] for s in steps if s.get(key) is not None])
    }
    return {
        "rounds": len(steps),
        "raw": raw_summary,
        "steps": step_summary,
        "p50_overhead_ms": step_summary["step_p50_ms"] - raw_summary["p50_ms"],
        "throughput_ratio": step_summary["steps_per_s"] / raw_summary["round_trips_per_s"],
        # per round: the ratio against that round's own baseline
        "throughput_ratio_per_round": [
            s["steps_per_s"] / r.round_trips_per_s for r, s in zip(raws, steps, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap", help="broker host:port (default: an embedded Tansu)")
    parser.add_argument("--steps", type=int, default=10, help="no-op steps per workflow")
    parser.add_argument("--sequential", type=int, default=20, help="workflows run one by one")
    parser.add_argument(
        "--workflows",
        type=int,
        default=RAW_WINDOW,
        help=f"workflows run at once (default {RAW_WINDOW}: the raw baseline's window)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians")
    parser.add_argument(
        "--partitions",
        type=int,
        default=6,
        help="partitions per topic (default 6, agentlog's default; the raw ping-pong uses 1)",
    )
    parser.add_argument(
        "--orchestrators",
        type=int,
        default=1,
        help="orchestrator processes in one group, sharing the partitions (default 1)",
    )
    parser.add_argument("--profile", help="directory for cProfile output of the processes")
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument(
        "--logs", help="keep the processes' logs in this directory (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    return report(asyncio.run(amain(args)), argv, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
