"""Cancellation reaches running tasks: orchestrator -> TaskCancelled -> the agent pool."""

from __future__ import annotations

import asyncio

import pytest

from agentlog.agents.orchestrator import Orchestrator
from agentlog.agents.runtime import Agent, AgentPool, TaskContext
from agentlog.client import AgentlogClient
from agentlog.schemas.events import JsonValue, TaskFailed, TaskRequested
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.workflow import WorkflowRegistry, WorkflowStatus, workflow
from tests.integration.agents.agent_support import Reader, make_topics, publish, until

# two steps at once, one agent slot: one runs, the other waits in the pool's buffer
PAIR = workflow("pair", version=1).step("a", agent="waiter").step("b", agent="waiter").build()


@pytest.mark.timeout(90)
async def test_cancel_stops_the_running_task_and_drops_the_waiting_one(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    started: list[TaskRequested] = []
    saw_cancelled: list[str] = []
    interrupted: list[str] = []

    async def wait_for_cancel(ctx: TaskContext) -> JsonValue:
        started.append(ctx.task)
        await ctx.cancelled.wait()
        saw_cancelled.append(ctx.task_id)
        try:
            await asyncio.sleep(60)  # ignores the flag: cancelled after the grace period
        except asyncio.CancelledError:
            interrupted.append(ctx.task_id)
            raise
        return None

    agent = Agent("waiter", wait_for_cancel, concurrency=1)
    await make_topics(settings, agent)
    async with (
        Orchestrator(settings, WorkflowRegistry([PAIR])) as orchestrator,
        AgentPool(agent, settings, cancel_grace=0.5, heartbeat_interval=1.0) as pool,
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        wf = await client.submit("pair", {})
        await until(lambda: len(started) == 1 and pool.stats.buffered == 1)
        running = started[0]
        await client.cancel(wf, "the test is over")
        state = await client.wait(wf, timeout=30)
        await until(lambda: pool.stats.cancelled == 2)
        # a late delivery of the cancelled task is dropped, not run
        await publish(settings, producer, running)
        await asyncio.sleep(1.0)
        seen = await responses.until(
            lambda s: sum(isinstance(e, TaskFailed) and e.workflow_id == wf for e in s) >= 2
        )
        await asyncio.sleep(0.5)
        seen = await responses.until(lambda s: True)

    assert state.status is WorkflowStatus.CANCELLED
    assert [t.task_id for t in started] == [running.task_id]  # the waiting one never started
    assert saw_cancelled == [running.task_id]
    assert interrupted == [running.task_id]
    answers = [e for e in seen if getattr(e, "workflow_id", None) == wf]
    failed = [e for e in answers if isinstance(e, TaskFailed)]
    assert len(answers) == len(failed) == 2  # one answer per task, both failures
    assert len({e.task_id for e in failed}) == 2
    assert all(e.error_kind == "cancelled" and not e.retryable for e in failed)
    assert all(f"workflow {wf} is cancelled" in e.message for e in failed)
    assert pool.stats.cancelled == 2
