"""Every demo workflow runs end to end through the orchestrator, on a real broker."""

from __future__ import annotations

import pytest

from agentlog.agents.locks import LockManager
from agentlog.agents.orchestrator import Orchestrator
from agentlog.client import AgentlogClient
from agentlog.schemas.events import StepScheduled
from agentlog.settings import Settings
from agentlog.workflow import WorkflowStatus
from agentlog.workflow.demos import DEMOS, demo_registry
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import JournalTail, Responder

#: What each demo outputs with the fake agents of tests/unit/workflow/test_demos.py.
EXPECTED = {
    "pr-deploy": {
        "approved": True,
        "tests_passed": True,
        "deployment": {"url": "https://staging.example.com", "version": "pr-42"},
    },
    "parallel-docs": {
        "document": "1. Install\n2. Quickstart\n3. Workflows\n4. Operations",
        "sections": 4,
    },
    "self-healing": {"healed": True, "rounds": 3, "last_fix": {"patch": "patch-3", "round": 3}},
    "triage-chain": {"ticket": "T-1042", "actions": ["add index", "batch writes"]},
    "supervisor": {
        "goal": "Cut checkout latency by 30% this quarter",
        "covered": ["code", "cost", "research", "security"],
    },
}


@pytest.mark.timeout(90)
async def test_every_demo_completes_with_its_expected_output(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        LockManager(settings),  # pr-deploy holds a repo lock around deploy
        Responder(settings, DEMO_KINDS) as agents,
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        assert orchestrator.owned_partitions == {0, 1, 2}
        assert orchestrator.assignors == ("range",)
        ids = {spec.name: await client.submit(spec.name, spec.example_input) for spec in DEMOS}
        states = await tail.terminal(ids.values(), seconds=45)
        final = await client.status(ids["pr-deploy"])

    for name, workflow_id in ids.items():
        state = states[workflow_id]
        assert state.status is WorkflowStatus.SUCCEEDED, (name, state.error)
        assert state.output == EXPECTED[name], name
    assert final == states[ids["pr-deploy"]]
    # one task per scheduled attempt, none lost, none duplicated
    scheduled = tail.scheduled_task_ids()
    assert len(scheduled) == len(set(scheduled))
    assert sorted(t.task_id for t in agents.tasks) == sorted(scheduled)
    kinds = {e.agent_kind for e in tail.events if isinstance(e, StepScheduled)}
    assert kinds == set(DEMO_KINDS)
