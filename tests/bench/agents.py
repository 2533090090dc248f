"""Agent-runtime benchmark: a no-op agent pool as the echo of a ping-pong, vs raw aiokafka.

The orchestrator is left out: this client publishes ``TaskRequested`` events
straight to ``tasks.noop`` and reads the ``TaskCompleted`` answers from
``responses``; the echo is a real agent pool process (``python -m
agentlog.agents.runtime run tests.bench.e2e:NOOP``, concurrency 64). So the
difference from the ``streams`` variant of ``tests.bench.pingpong`` (an
``EventConsumer`` → ``EventProducer`` echo of the same events, same client)
is what the agent runtime itself costs: buffering, running the handler,
the response's acknowledgement, offset commits, heartbeats.

Variants alternate for ``--rounds`` rounds (a fresh embedded broker per
round), all topics with one partition: ``raw`` (bytes, plain aiokafka),
``streams`` and ``agent``. Medians over rounds are reported with the agent's
overhead and ratio vs both.

Run: ``python -m tests.bench.agents`` (embedded Tansu) or with ``--bootstrap``;
``--profile DIR`` runs the agent process under cProfile (``agent-<round>.prof``).
``--baseline DIR`` adds the variant ``agent-base``, next to ``agent`` in each
round (which of the two goes first alternates): the same pool process with
the ``agentlog.agents.runtime`` package loaded from DIR instead (a copy of an
older ``agents/runtime``, e.g. ``git archive <rev> agents/runtime | tar -x -C
/tmp/old``), to compare two runtimes alternately on the same broker.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import topics_for
from agentlog.schemas.events import TaskCompleted, TaskRequested, new_envelope
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import RESPONSES, ensure_topics, tasks_topic
from tests.bench import pingpong, report
from tests.bench.e2e import NOOP
from tests.bench.pingpong import process_cpu_s

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("raw", "streams", "agent")
BASELINE = "agent-base"
#: Runs ``python -m agentlog.agents.runtime`` with the package loaded from argv[1].
_FROM_DIR = """\
import importlib.util, runpy, sys
import agentlog.agents
where = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location(
    "agentlog.agents.runtime", where + "/__init__.py", submodule_search_locations=[where]
)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
agentlog.agents.runtime = module
runpy.run_module(spec.name, run_name="__main__", alter_sys=True)
"""
_JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    p50_ms: float
    p99_ms: float
    round_trips_per_s: float
    cpu_us_per_task: float | None = None  # the agent process's CPU time per task (throughput)


def noop_task(i: int, seq: int, workflow_id: str = "wf") -> TaskRequested:
    """The ``TaskRequested`` the client sends: task id ``<i>.<seq>``, no deadline."""
    return TaskRequested(
        envelope=new_envelope("TaskRequested", workflow_id, source="bench"),
        task_id=f"{i}.{seq}",
        workflow_id=workflow_id,
        step="noop",
        attempt=1,
        agent_kind="noop",
        input={"prompt": "ping", "n": i},
        deadline=None,
        idempotency_key=f"{workflow_id}:noop:{seq}",
        priority=3,
        fencing_tokens={},
    )


def _agent_process(
    bootstrap: str, prefix: str, log: Path, profile: Path | None, runtime: str | None = None
) -> Any:
    args = ["run", "tests.bench.e2e:NOOP"]
    args += ["--kafka", bootstrap, "--topic-prefix", prefix, "--log-level", "WARNING"]
    if runtime is not None:  # the runtime package from another directory
        command = [sys.executable, "-c", _FROM_DIR, str(Path(runtime).resolve()), *args]
    else:
        prof = ["cProfile", "-o", str(profile), "-m"] if profile else []
        command = [sys.executable, "-m", *prof, "agentlog.agents.runtime", *args]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


async def _agent_client(settings: Settings) -> tuple[pingpong.Client, Any]:
    producer = EventProducer(settings)
    consumer = EventConsumer(settings, group_id=None, dead_letters=None, max_records=1000)
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(settings.topic(RESPONSES.name), 0)])
    topic = settings.topic(tasks_topic("noop").name)
    client = pingpong.Client()
    sends = itertools.count()

    async def send(i: int) -> None:
        # task ids must be unique: the pool skips a task id it answered recently
        await producer.enqueue(topic, noop_task(i, next(sends)))

    async def receive() -> list[int]:
        got = []
        for d in await consumer.poll(timeout_ms=100):
            if not isinstance(d.event, TaskCompleted):
                raise TypeError(f"the no-op agent answered {d.event!r}")
            got.append(int(d.event.task_id.partition(".")[0]))
        return got

    client.send, client.receive = send, receive

    async def close() -> None:
        await producer.stop()
        await consumer.stop()

    return client, close


async def run_agent(
    bootstrap: str,
    args: argparse.Namespace,
    logs: Path,
    profile: Path | None,
    runtime: str | None = None,
) -> Result:
    """One round of the ``agent`` variant (``agent-base`` with ``runtime``): a fresh prefix,
    one pool process."""
    prefix = f"bagent{uuid.uuid4().hex[:6]}"
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        partitions=1,
        fetch_max_wait_ms=pingpong.FETCH_WAIT_MS,
        source="bench",
    )
    await ensure_topics(settings, topics_for(NOOP))  # one partition each, like the raw baseline
    proc = _agent_process(bootstrap, prefix, logs / f"{prefix}.log", profile, runtime)
    try:
        client, close = await _agent_client(settings)
        try:
            async with asyncio.timeout(_JOIN_TIMEOUT_S):  # the pool joins its group first
                await pingpong._latency(client, 50)  # the same measurement
            samples = await pingpong._latency(client, args.latency_n)
            cpu_before = process_cpu_s(proc.pid)
            rate = await pingpong._throughput(client, args.throughput_n, args.window, 10_000_000)
            cpu_after = process_cpu_s(proc.pid)
        finally:
            await close()
    finally:
        proc.terminate()  # SIGTERM: graceful stop (and the profile is written)
        await asyncio.to_thread(proc.wait, 60)
    samples.sort()
    cpu = (cpu_after - cpu_before) / args.throughput_n * 1e6
    p99 = samples[int(len(samples) * 0.99) - 1]
    return Result(
        "agent" if runtime is None else BASELINE, statistics.median(samples), p99, rate, cpu
    )


async def _round(bootstrap: str, args: argparse.Namespace, logs: Path, r: int) -> list[Result]:
    results = []
    for variant in _variants(args, r):
        if variant == BASELINE:
            res = await run_agent(bootstrap, args, logs, None, args.baseline)
        elif variant == "agent":
            profile = Path(args.profile) / f"agent-{r}.prof" if args.profile else None
            res = await run_agent(bootstrap, args, logs, profile)
        else:
            echo = await pingpong.run_variant(
                "raw" if variant == "raw" else "agentlog", bootstrap, args
            )
            res = Result(variant, echo.p50_ms, echo.p99_ms, echo.round_trips_per_s)
        cpu = f"  {res.cpu_us_per_task:.0f} us CPU/task" if res.cpu_us_per_task else ""
        print(
            f"round {r}/{args.rounds} {variant:8s} p50={res.p50_ms:.2f} ms "
            f"p99={res.p99_ms:.2f} ms  {res.round_trips_per_s:,.0f} rt/s{cpu}",
            flush=True,
        )
        results.append(res)
    return results


def _variants(args: argparse.Namespace, r: int) -> tuple[str, ...]:
    """This round's variants: ``agent`` and ``agent-base`` swap places every other round."""
    if not args.baseline:
        return VARIANTS
    return (*VARIANTS, BASELINE) if r % 2 else (*VARIANTS[:-1], BASELINE, "agent")


def summarize(results: list[Result]) -> dict[str, Any]:
    """Medians per variant, and the agent's overhead and ratio against each baseline."""
    out: dict[str, Any] = {}
    for variant in (*VARIANTS, BASELINE):
        rs = [r for r in results if r.variant == variant]
        if not rs:
            continue
        cpus = [r.cpu_us_per_task for r in rs if r.cpu_us_per_task is not None]
        out[variant] = {
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "round_trips_per_s": statistics.median(r.round_trips_per_s for r in rs),
            **({"cpu_us_per_task": statistics.median(cpus)} if cpus else {}),
        }
    agent = out["agent"]
    for base in ("raw", "streams", BASELINE):
        if base in out:
            out[f"agent_vs_{base}"] = {
                "p50_overhead_ms": agent["p50_ms"] - out[base]["p50_ms"],
                "throughput_ratio": agent["round_trips_per_s"] / out[base]["round_trips_per_s"],
            }
    return out


async def amain(args: argparse.Namespace) -> list[Result]:
    bootstrap = args.bootstrap or os.environ.get("AGENTLOG_KAFKA_BOOTSTRAP")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="agentlog-bench-") as tmp:
        for r in range(1, args.rounds + 1):
            if bootstrap:
                results += await _round(bootstrap, args, Path(tmp), r)
                continue
            from agentlog.streams.embedded.tansu import TansuLauncher

            (Path(tmp) / f"broker-{r}").mkdir()  # a fresh broker per round, as tests.bench.e2e
            async with TansuLauncher(Path(tmp) / f"broker-{r}") as broker:
                results += await _round(broker.bootstrap, args, Path(tmp), r)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap", help="broker host:port (default: an embedded Tansu)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--latency-n", type=int, default=500, help="sequential round trips")
    parser.add_argument("--throughput-n", type=int, default=20_000, help="pipelined round trips")
    parser.add_argument("--window", type=int, default=1000, help="requests in flight")
    parser.add_argument("--profile", help="directory for cProfile output of the agent process")
    parser.add_argument(
        "--baseline", help="also run the pool with agentlog.agents.runtime from this directory"
    )
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = summarize(asyncio.run(amain(args)))
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return report(summary, argv, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
