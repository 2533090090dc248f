"""Realistic event streams for the projection tests, without Kafka.

Workflows are driven through the pure core (as in ``tests/unit/workflow``)
with the demo registry and fake agents, so their journals are what the
orchestrator would write, with the requests, tasks and responses around them;
locks, agents and cache statistics are added by hand. :func:`scenario` merges
them like concurrent traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentlog.agents.locks.state import MANAGER_SOURCE
from agentlog.projections.records import Record
from agentlog.schemas.events import (
    AgentDeregistered,
    AgentHeartbeat,
    AgentRegistered,
    CacheStats,
    CancelRequested,
    Event,
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockReleaseRequested,
    LockRenewed,
    LockRenewRequested,
    LockRequested,
    StepScheduled,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    WorkflowRequested,
    new_envelope,
)
from agentlog.workflow import Input, JournalEvent, task_for
from agentlog.workflow.demos import DEMOS, demo_registry
from tests.unit.workflow.harness import Driver
from tests.unit.workflow.test_demos import fake_agent

#: Every agent kind the demos use (their tasks topics must exist).
DEMO_KINDS = sorted({step.agent for spec in DEMOS for step in spec.steps if step.agent})


@dataclass(frozen=True)
class Produced:
    """An event and the catalogue name of its topic (``tasks.<kind>`` for tasks)."""

    family: str
    event: Event


class RecordingDriver(Driver):
    """A Driver that also records, in order, every event a real deployment would produce."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.produced: list[Produced] = []

    def send(self, item: Input) -> list[JournalEvent]:
        if isinstance(item, WorkflowRequested | CancelRequested):
            self.produced.append(Produced("requests", item))
        elif isinstance(item, TaskCompleted | TaskFailed | TaskProgress):
            self.produced.append(Produced("responses", item))
        decided = super().send(item)
        for event in decided:
            self.produced.append(Produced("journal", event))
        for event in decided:
            if isinstance(event, StepScheduled):
                task = task_for(self.state, event)
                if task is not None:
                    self.produced.append(Produced(f"tasks.{task.agent_kind}", task))
        return decided


def _workflow(index: int, prefix: str, now: datetime) -> list[Produced]:
    spec = DEMOS[index % len(DEMOS)]
    d = RecordingDriver(demo_registry(), workflow_id=f"{prefix}-wf-{index}", now=now)
    variant = index % 7
    if variant == 6:
        d.request("no-such-definition", input={})  # rejected
        return d.produced
    d.request(spec.name, input=spec.example_input)
    first = next(iter(d.current.steps))
    if variant == 4 and d.current.steps[first].tasks:
        d.progress(first)
        d.tick(1500)
        d.fail(first, kind="agent_error", retryable=True)  # retried after a backoff
    if variant == 5:
        d.tick(250)
        d.cancel("changed my mind")
        return d.produced
    d.tick(120 + 37 * index)
    d.run_agents(fake_agent)
    return d.produced


def _locks(prefix: str, now: datetime) -> list[Produced]:
    out: list[Produced] = []
    for r in range(3):
        resource = f"{prefix}:db/{r}"

        def env(name: str, ms: int, resource: str = resource, source: str = "") -> Any:
            # decisions come from the lock manager; requests and commands from clients
            source = source or ("test" if name == "LockRequested" else MANAGER_SOURCE)
            return new_envelope(
                name, resource, source=source, occurred_at=now + timedelta(milliseconds=ms)
            )

        lease = now + timedelta(seconds=30)
        a, b, c = (f"{resource}/req-{x}" for x in "abc")
        out += [
            Produced(
                "locks",
                LockRequested(
                    envelope=env("LockRequested", 0),
                    resource=resource,
                    request_id=a,
                    requester="wf-a/deploy",
                    ttl_ms=30000,
                    wait_timeout_ms=5000,
                    workflow_id="wf-a",
                ),
            ),
            Produced(
                "locks",
                LockGranted(
                    envelope=env("LockGranted", 3),
                    resource=resource,
                    request_id=a,
                    requester="wf-a/deploy",
                    fencing_token=1,
                    lease_expires_at=lease,
                ),
            ),
            Produced(
                "locks",
                LockRequested(
                    envelope=env("LockRequested", 10),
                    resource=resource,
                    request_id=b,
                    requester="wf-b/deploy",
                    ttl_ms=30000,
                    wait_timeout_ms=5000,
                ),
            ),
            Produced(
                "locks",
                LockQueued(
                    envelope=env("LockQueued", 11),
                    resource=resource,
                    request_id=b,
                    requester="wf-b/deploy",
                    position=1,
                ),
            ),
            # the holder's renew command (not a fact: archived, not folded) ...
            Produced(
                "locks",
                LockRenewRequested(
                    envelope=env("LockRenewRequested", 399, source="lock-client"),
                    resource=resource,
                    request_id=a,
                    fencing_token=1,
                    ttl_ms=40_000,
                ),
            ),
            # ... and the lock manager's decision
            Produced(
                "locks",
                LockRenewed(
                    envelope=env("LockRenewed", 400),
                    resource=resource,
                    request_id=a,
                    fencing_token=1,
                    lease_expires_at=lease + timedelta(seconds=10),
                ),
            ),
            # the holder's release command (not a fact: the projection skips it); the
            # holder of db/1 is an older client that sends the deprecated interim encoding
            Produced("locks", _release_command(resource, a, env, 899 + r * 100, interim=r == 1)),
            # ... and the lock manager's decision
            Produced(
                "locks",
                LockReleased(
                    envelope=env("LockReleased", 900 + r * 100),
                    resource=resource,
                    request_id=a,
                    fencing_token=1,
                ),
            ),
            Produced(
                "locks",
                LockGranted(
                    envelope=env("LockGranted", 901 + r * 100),
                    resource=resource,
                    request_id=b,
                    requester="wf-b/deploy",
                    fencing_token=2,
                    lease_expires_at=lease,
                ),
            ),
            Produced(
                "locks",
                LockRequested(
                    envelope=env("LockRequested", 1000 + r * 100),
                    resource=resource,
                    request_id=c,
                    requester="agent-1",
                    ttl_ms=1000,
                    wait_timeout_ms=0,
                ),
            ),
            Produced(
                "locks",
                LockDenied(
                    envelope=env("LockDenied", 1001 + r * 100),
                    resource=resource,
                    request_id=c,
                    requester="agent-1",
                    reason="held and wait_timeout_ms is 0",
                ),
            ),
        ]
        if r == 2:
            out.append(
                Produced(
                    "locks",
                    LockExpired(
                        envelope=env("LockExpired", 40000),
                        resource=resource,
                        request_id=b,
                        fencing_token=2,
                    ),
                )
            )
    return out


def _release_command(
    resource: str, request_id: str, env: Any, ms: int, *, interim: bool
) -> LockReleaseRequested | LockReleased:
    if interim:
        return LockReleased(
            envelope=env("LockReleased", ms, source="lock-client"),
            resource=resource,
            request_id=request_id,
            fencing_token=1,
        )
    return LockReleaseRequested(
        envelope=env("LockReleaseRequested", ms, source="lock-client"),
        resource=resource,
        request_id=request_id,
        fencing_token=1,
        reason="deployed",
    )


def _agents(prefix: str, now: datetime) -> list[Produced]:
    out: list[Produced] = []
    for n, kind in enumerate(("reviewer", "writer", "tester")):
        agent_id = f"{prefix}-agent-{n}"

        def env(name: str, s: float, agent_id: str = agent_id) -> Any:
            return new_envelope(
                name, agent_id, source="test", occurred_at=now + timedelta(seconds=s)
            )

        out.append(
            Produced(
                "agents",
                AgentRegistered(
                    envelope=env("AgentRegistered", 0),
                    agent_id=agent_id,
                    agent_kind=kind,
                    host="h",
                    pid=100 + n,
                    concurrency=4,
                    version="0.1",
                ),
            )
        )
        out += [
            Produced(
                "agents",
                AgentHeartbeat(
                    envelope=env("AgentHeartbeat", 5 * (b + 1)),
                    agent_id=agent_id,
                    agent_kind=kind,
                    in_flight=b,
                    capacity=4,
                ),
            )
            for b in range(3)
        ]
        out.append(
            Produced(
                "cache",
                CacheStats(
                    envelope=env("CacheStats", 10),
                    agent_id=agent_id,
                    agent_kind=kind,
                    window_start=now,
                    window_end=now + timedelta(seconds=10),
                    hits=7 + n,
                    misses=3,
                    hit_latency_ms=0.4,
                    miss_latency_ms=120.5,
                    bytes=2048,
                    evictions=n,
                    tokens_saved=900,
                    backend="redis" if n else "memory",
                ),
            )
        )
        if n == 0:
            out.append(
                Produced(
                    "agents",
                    AgentDeregistered(
                        envelope=env("AgentDeregistered", 30),
                        agent_id=agent_id,
                        agent_kind=kind,
                        reason="shutdown",
                    ),
                )
            )
    return out


def scenario(prefix: str, workflows: int, *, now: datetime | None = None) -> list[Produced]:
    """Events of ``workflows`` workflows (every demo; rejections, cancels, retries), locks,
    agents and cache stats, interleaved by workflow like concurrent traffic."""
    now = now or datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
    streams = [_workflow(i, prefix, now + timedelta(seconds=i)) for i in range(workflows)]
    streams += [_locks(prefix, now), _agents(prefix, now)]
    rng = random.Random(workflows)
    merged: list[Produced] = []
    cursors = [0] * len(streams)
    live = [i for i, s in enumerate(streams) if s]
    while live:
        i = rng.choice(live)
        merged.append(streams[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    return merged


def as_records(
    items: list[Produced], prefix: str = "agentlog", partitions: int = 2
) -> list[Record]:
    """The records a topic would hold: offsets per (topic, partition), partition by key hash."""
    offsets: dict[tuple[str, int], int] = {}
    records = []
    for item in items:
        topic = f"{prefix}.{item.family}"
        partition = sum(item.event.envelope.key.encode()) % partitions
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        records.append(Record(topic, partition, offset, -1, item.event))
    return records
