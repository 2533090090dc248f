"""Many workflows at once, and more than one orchestrator: none is lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentlog.agents.locks import LockManager
from agentlog.agents.orchestrator import Orchestrator
from agentlog.client import AgentlogClient
from agentlog.settings import Settings
from agentlog.workflow import WorkflowStatus
from agentlog.workflow.demos import DEMOS, TRIAGE_CHAIN, demo_registry
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import (
    JournalTail,
    Responder,
    create_topics,
    fresh_settings,
    poll_until,
)


@pytest.mark.timeout(120)
async def test_200_workflows_submitted_at_once_all_reach_a_terminal_state(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        LockManager(settings),  # pr-deploy holds a repo lock around deploy
        Responder(settings, DEMO_KINDS),
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        started = time.monotonic()
        ids = await asyncio.gather(
            *(
                client.submit(spec.name, spec.example_input)
                for spec in [DEMOS[i % len(DEMOS)] for i in range(200)]
            )
        )
        states = await tail.terminal(ids, seconds=90)
        elapsed = time.monotonic() - started

    assert len(set(ids)) == 200
    assert all(s.status is WorkflowStatus.SUCCEEDED for s in states.values())
    scheduled = tail.scheduled_task_ids()
    assert len(scheduled) == len(set(scheduled))
    print(f"200 workflows, {len(scheduled)} tasks in {elapsed:.1f} s")


@pytest.mark.timeout(120)
async def test_submit_many_starts_one_workflow_per_input(
    settings: Settings, tail: JournalTail
) -> None:
    inputs = [{**TRIAGE_CHAIN.example_input, "service": f"svc-{i}"} for i in range(60)]
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS),
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        ids = await client.submit_many(TRIAGE_CHAIN.name, inputs)
        states = await tail.terminal(ids, seconds=90)

    assert len(set(ids)) == len(inputs)
    assert [states[i].input for i in ids] == inputs
    assert all(s.status is WorkflowStatus.SUCCEEDED for s in states.values())


@pytest.mark.timeout(120)
async def test_two_orchestrators_split_the_partitions_and_own_p_of_both_topics(
    kafka_bootstrap: str,
) -> None:
    settings = fresh_settings(kafka_bootstrap, partitions=4)
    await create_topics(settings, DEMO_KINDS)
    async with (
        JournalTail(settings) as tail,
        Orchestrator(settings, demo_registry()) as first,
        Orchestrator(settings, demo_registry()) as second,
        Responder(settings, DEMO_KINDS),
        AgentlogClient(settings) as client,
    ):
        await poll_until(lambda: bool(first.owned_partitions and second.owned_partitions), 60)
        async with asyncio.timeout(30):
            await first.wait_ready()
            await second.wait_ready()
        assert first.owned_partitions | second.owned_partitions == {0, 1, 2, 3}
        assert not first.owned_partitions & second.owned_partitions
        ids = [
            await client.submit(TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input) for _ in range(40)
        ]
        states = await tail.terminal(ids, seconds=60)
        owners = {
            workflow_id: [o for o in (first, second) if o.state(workflow_id) is not None]
            for workflow_id in ids
        }

    assert all(s.status is WorkflowStatus.SUCCEEDED for s in states.values())
    assert all(len(found) == 1 for found in owners.values())  # single writer per workflow
    assert first.stats.decided > 0
    assert second.stats.decided > 0
