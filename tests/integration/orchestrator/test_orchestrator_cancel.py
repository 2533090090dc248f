"""The orchestrator publishes TaskCancelled for the open tasks of workflows that end."""

from __future__ import annotations

import pytest

from agentlog.agents.orchestrator import Orchestrator
from agentlog.client import AgentlogClient
from agentlog.schemas.events import StepScheduled, derive_event_id
from agentlog.settings import Settings
from agentlog.workflow import WorkflowRegistry, WorkflowStatus, workflow
from tests.integration.orchestrator.harness import JournalTail, Responder, poll_until

HANG = workflow("hang", version=1).step("call", agent="hang").build()


@pytest.mark.timeout(90)
async def test_a_cancelled_workflow_cancels_its_task_and_recovery_sends_the_same_event(
    settings: Settings, tail: JournalTail
) -> None:
    registry = WorkflowRegistry([HANG])
    async with (
        Responder(settings, ["hang"], lambda task: None) as responder,
        AgentlogClient(settings) as client,
    ):
        async with Orchestrator(settings, registry) as orchestrator:
            await orchestrator.wait_ready()
            wf = await client.submit("hang", {})
            await poll_until(lambda: len(responder.tasks) == 1, 20)
            await client.cancel(wf, "operator asked")
            state = await client.wait(wf, timeout=30)
            await poll_until(lambda: len(responder.cancellations) == 1, 20)
        # a restarted orchestrator publishes the recent cancellation again: the same event
        async with Orchestrator(settings, registry) as again:
            await again.wait_ready()
            await poll_until(lambda: len(responder.cancellations) == 2, 20)
            assert again.stats.republished_cancellations == 1

    assert state.status is WorkflowStatus.CANCELLED
    scheduled = next(e for e in tail.of(wf) if isinstance(e, StepScheduled))
    first, second = responder.cancellations
    assert first == second
    assert first.envelope.event_id == derive_event_id(scheduled.envelope.event_id, 1)
    assert (first.task_id, first.workflow_id) == (responder.tasks[0].task_id, wf)
    assert first.reason == f"workflow {wf} is cancelled"
