"""Orchestrator CPU per workflow step without a broker: codec + core, in one process.

What the orchestrator process does per step besides talking to Kafka:
decode the agent's ``TaskCompleted``, decide (``BatchDecider`` over
``PartitionState``, exactly as the runner calls them), pick the tasks to
publish, and encode the journal events and the ``TaskRequested``. Workflows
are the e2e benchmark's chains of ``--steps`` no-op steps with the spec
inline in each request (as ``AgentlogClient.submit(spec=...)`` sends it);
``--workflows`` of them advance in lock step, inputs fed in batches of
``--batch`` (the runner's ``max_batch``), with the orchestrator's GC
threshold (``AGENTLOG_GC_THRESHOLD``). The agent's side (building the
answers) and the requests' encoding are outside the timed sections.

Reported per step (medians over ``--rounds``): total microseconds, and the
part spent decoding, deciding and encoding; and per workflow, the first pass
(the request decoded and decided, its first step scheduled and encoded). ``--profile FILE`` writes a
cProfile of one extra round. A broker-free number: compare it with the e2e
benchmark's ``orchestrator_cpu_us_per_step`` to see what Kafka I/O costs.

Run: ``python -m tests.bench.core``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from agentlog.agents.orchestrator.inputs import BatchDecider, Outcome
from agentlog.agents.orchestrator.partition import PartitionState
from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import TaskRequested, WorkflowRequested, new_envelope
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.consumer import Delivered
from agentlog.tuning import raise_gc_threshold
from agentlog.workflow import WorkflowRegistry
from tests.bench.e2e import chain_spec
from tests.bench.pingpong import task_completed

PARTITIONS = 12


def _request(spec: dict[str, Any]) -> WorkflowRequested:
    workflow_id = str(uuid.uuid4())
    return WorkflowRequested(
        envelope=new_envelope("WorkflowRequested", workflow_id, source="bench"),
        workflow_id=workflow_id,
        spec=spec,
        input={},
        labels={},
    )


def _delivered(data: bytes, workflow_id: str, offset: int) -> tuple[bytes, int, int]:
    return data, partition_for(workflow_id, PARTITIONS), offset


def run_round(args: argparse.Namespace) -> dict[str, float]:
    codec = AvroCodec.default()
    decider = BatchDecider(WorkflowRegistry(), PARTITIONS, lambda: datetime.now(UTC))
    parts = {p: PartitionState(p) for p in range(PARTITIONS)}
    spec = chain_spec(args.steps)
    inbox = [
        _delivered(codec.encode(r), r.workflow_id, i)
        for i, r in enumerate(_request(spec) for _ in range(args.workflows))
    ]
    spent = {"decode": 0.0, "decide": 0.0, "encode": 0.0}
    started_s = 0.0  # the first pass: every request decided (spec read, first step scheduled)
    steps = 0
    offset = len(inbox)
    clock = time.perf_counter
    while inbox:
        outgoing: list[TaskRequested] = []
        for start in range(0, len(inbox), args.batch):
            chunk = inbox[start : start + args.batch]
            t0 = clock()
            deliveries = [
                Delivered("responses", p, off, None, 0, (), codec.decode(data))
                for data, p, off in chunk
            ]
            t1 = clock()
            outcome = Outcome()
            decider.decide(parts, deliveries, outcome)
            tasks = decider.tasks(parts, outcome)
            t2 = clock()
            for groups in outcome.journal.values():
                for group in groups:
                    for event in group:
                        codec.encode(event)
            for _, task in tasks:
                codec.encode(task)
            t3 = clock()
            spent["decode"] += t1 - t0
            spent["decide"] += t2 - t1
            spent["encode"] += t3 - t2
            outgoing.extend(task for _, task in tasks)
        if not steps:
            started_s = sum(spent.values())
        steps += len(outgoing)
        inbox = []
        for task in outgoing:  # the agents' side: not timed
            inbox.append(_delivered(codec.encode(task_completed(task)), task.workflow_id, offset))
            offset += 1
    expected = args.workflows * args.steps
    if steps != expected:
        raise RuntimeError(f"{steps} steps scheduled, expected {expected}")
    out = {part: seconds / steps * 1e6 for part, seconds in spent.items()}
    out["total"] = sum(out.values())
    out["start_us_per_workflow"] = started_s / args.workflows * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="no-op steps per workflow")
    parser.add_argument("--workflows", type=int, default=2000, help="workflows in lock step")
    parser.add_argument("--batch", type=int, default=500, help="inputs per decide call")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5); medians")
    parser.add_argument("--profile", help="write a cProfile of one more round to this file")
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)
    raise_gc_threshold(Settings().gc_threshold)  # as the orchestrator process does
    rounds = []
    for r in range(1, args.rounds + 1):
        res = run_round(args)
        rounds.append(res)
        print(
            f"round {r}/{args.rounds}: {res['total']:.1f} us/step (decode {res['decode']:.1f}, "
            f"decide {res['decide']:.1f}, encode {res['encode']:.1f}); "
            f"{res['start_us_per_workflow']:.0f} us per workflow start",
            flush=True,
        )
    summary = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(json.dumps({"us_per_step": summary}, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": argv, "us_per_step": summary, "rounds": rounds}, f, indent=2)
    if args.profile:
        cProfile.runctx("run_round(args)", globals(), {"args": args}, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
