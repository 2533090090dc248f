"""Steps that declare locks, on a real broker: the orchestrator with a lock manager.

The acceptance test of the locks issue: 20 PR-deployment workflows on the same
repository run at once; their deploy steps never overlap in time and the
fencing tokens they get strictly increase in grant order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import pytest

from agentlog.agents.locks import LockClient, LockManager
from agentlog.agents.orchestrator import Orchestrator
from agentlog.client import AgentlogClient
from agentlog.schemas.events import LockAcquired, LockAwaited, TaskRequested
from agentlog.settings import Settings
from agentlog.workflow import WorkflowRegistry, WorkflowStatus, lock, workflow
from agentlog.workflow.demos import demo_registry
from agentlog.workflow.spec import RetryPolicy
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import (
    Done,
    JournalTail,
    Reply,
    Responder,
    demo_behaviour,
    poll_until,
)

REPO = "acme/shop"
RESOURCE = f"repo:{REPO}"


@dataclass(frozen=True)
class Deploy:
    """One deploy as the deployer agent saw it."""

    workflow_id: str
    token: int
    started: float
    ended: float


class Deployer:
    """The demo agents, with a deployer that records when it ran and with which token."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deploys: list[Deploy] = []

    async def __call__(self, task: TaskRequested) -> Reply:
        if task.agent_kind != "deployer":
            return demo_behaviour(task)
        started = time.monotonic()
        await asyncio.sleep(self.seconds)  # other deploys would run now if nothing serialised them
        self.deploys.append(
            Deploy(task.workflow_id, task.fencing_tokens[RESOURCE], started, time.monotonic())
        )
        return demo_behaviour(task)


@pytest.mark.timeout(150)
async def test_twenty_pr_deploys_of_one_repo_never_overlap_and_tokens_increase(
    settings: Settings, tail: JournalTail
) -> None:
    deployer = Deployer(seconds=0.05)
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        LockManager(settings) as manager,
        Responder(settings, DEMO_KINDS, deployer),
        AgentlogClient(settings) as client,
    ):
        await asyncio.gather(orchestrator.wait_ready(), manager.wait_ready())
        ids = await asyncio.gather(
            *(client.submit("pr-deploy", {"repo": REPO, "pr": pr}) for pr in range(1, 21))
        )
        states = await tail.terminal(ids, seconds=100)
        # every lock is given back once the deploys are done
        await poll_until(lambda: _free(manager, RESOURCE), seconds=20)

    for workflow_id in ids:
        state = states[workflow_id]
        assert state.status is WorkflowStatus.SUCCEEDED, (workflow_id, state.error)
    deploys = sorted(deployer.deploys, key=lambda d: d.started)
    assert sorted(d.workflow_id for d in deploys) == sorted(ids)  # one deploy each
    for before, after in itertools.pairwise(deploys):
        assert before.ended <= after.started, f"{before} overlaps {after}"
    # tokens strictly increase in grant order, and grant order is deploy order
    acquired = [e for e in tail.events if isinstance(e, LockAcquired)]
    grants = sorted(acquired, key=lambda e: e.fencing_token)
    assert [e.fencing_token for e in grants] == list(range(1, 21))
    assert [d.token for d in deploys] == list(range(1, 21))
    assert [e.workflow_id for e in grants] == [d.workflow_id for d in deploys]
    assert orchestrator.stats.lock_commands >= 40  # a request and a release per deploy


def _free(manager: LockManager, resource: str) -> bool:
    state = manager.state(resource)
    return state is not None and state.holder is None and not state.queue


def _locked_spec(wait_ms: int, attempts: int) -> WorkflowRegistry:
    spec = (
        workflow("guarded", version=1, required_input=("target",))
        .step(
            "change",
            agent="deployer",
            input={"target": "${input.target}"},
            retry=RetryPolicy(max_attempts=attempts, initial_backoff_ms=10),
            locks=[lock("db:${input.target}", ttl_ms=30_000, wait_ms=wait_ms)],
        )
        .build()
    )
    return WorkflowRegistry([spec])


@pytest.mark.timeout(90)
async def test_a_denied_lock_fails_the_step_with_lock_denied(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, _locked_spec(wait_ms=0, attempts=1)) as orchestrator,
        LockManager(settings) as manager,
        Responder(settings, ["deployer"], lambda _: Done({"ok": True})) as agents,
        AgentlogClient(settings) as client,
        LockClient(settings) as locks,
    ):
        await asyncio.gather(orchestrator.wait_ready(), manager.wait_ready())
        async with locks.lock("db:orders", ttl=30, wait=10):
            workflow_id = await client.submit("guarded", {"target": "orders"})
            state = (await tail.terminal([workflow_id], seconds=30))[workflow_id]
    assert state.status is WorkflowStatus.FAILED
    assert state.error is not None
    assert state.error.error_kind == "lock_denied"
    assert "db:orders" in state.error.message
    assert "busy" in state.error.message
    assert agents.tasks == []  # the agent never ran without the lock


@pytest.mark.timeout(90)
async def test_cancelling_a_workflow_that_waits_for_a_lock_withdraws_its_request(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, _locked_spec(wait_ms=60_000, attempts=1)) as orchestrator,
        LockManager(settings) as manager,
        Responder(settings, ["deployer"], lambda _: Done({"ok": True})) as agents,
        AgentlogClient(settings) as client,
        LockClient(settings) as locks,
    ):
        await asyncio.gather(orchestrator.wait_ready(), manager.wait_ready())
        async with locks.lock("db:users", ttl=30, wait=10):
            workflow_id = await client.submit("guarded", {"target": "users"})
            await tail.until(
                lambda t: any(isinstance(e, LockAwaited) for e in t.of(workflow_id)), seconds=30
            )
            await poll_until(lambda: _queued(manager, "db:users") == 1, seconds=20)
            await client.cancel(workflow_id, reason="not today")
            state = (await tail.terminal([workflow_id], seconds=30))[workflow_id]
            # the waiting request leaves the queue; the holder keeps its lease
            await poll_until(lambda: _queued(manager, "db:users") == 0, seconds=20)
            held = manager.state("db:users")
            assert held is not None
            assert held.holder is not None
    assert state.status is WorkflowStatus.CANCELLED
    assert agents.tasks == []


def _queued(manager: LockManager, resource: str) -> int:
    state = manager.state(resource)
    return len(state.queue) if state is not None else 0


@pytest.mark.timeout(120)
async def test_a_new_orchestrator_resumes_a_step_waiting_for_a_lock(
    settings: Settings, tail: JournalTail
) -> None:
    """The first orchestrator stops while the step waits; the grant reaches the second one."""
    registry = _locked_spec(wait_ms=60_000, attempts=1)
    async with (
        LockManager(settings) as manager,
        Responder(settings, ["deployer"], lambda t: Done({"token": t.fencing_tokens})) as agents,
        AgentlogClient(settings) as client,
        LockClient(settings) as locks,
    ):
        await manager.wait_ready()
        lease = await locks.acquire("db:billing", ttl=30, wait=10)
        async with Orchestrator(settings, registry) as first:
            await first.wait_ready()
            workflow_id = await client.submit("guarded", {"target": "billing"})
            await poll_until(lambda: _queued(manager, "db:billing") == 1, seconds=30)
        await lease.release()  # the grant goes to a workflow whose orchestrator is gone
        async with Orchestrator(settings, registry) as second:
            await second.wait_ready()
            state = (await tail.terminal([workflow_id], seconds=60))[workflow_id]
        await poll_until(lambda: _free(manager, "db:billing"), seconds=20)
    assert state.status is WorkflowStatus.SUCCEEDED, state.error
    assert state.output == {"change": {"token": {"db:billing": lease.token + 1}}}
    assert len(agents.tasks) == 1
