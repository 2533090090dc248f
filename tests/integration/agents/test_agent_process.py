"""Agent processes: a SIGKILL mid-task redelivers the task; the idempotent sink applies it once."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis

from agentlog.schemas.events import AgentDeregistered, AgentRegistered, TaskCompleted
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS
from tests.integration.agents.agent_support import (
    ROOT,
    AgentProcess,
    Reader,
    make_topics,
    publish,
    task_event,
)
from tests.integration.agents.sink_agent import sink

TARGET = "tests.integration.agents.sink_agent:sink"


@pytest.fixture
async def spawn(
    settings: Settings, redis_url: str, tmp_path: Path
) -> AsyncIterator[Callable[[str], Awaitable[AgentProcess]]]:
    """Start an agent process of the sink agent (killed at teardown if still running)."""
    made: list[AgentProcess] = []

    async def start(name: str) -> AgentProcess:
        process = AgentProcess(
            settings,
            TARGET,
            tmp_path / f"{name}.log",
            args=["--heartbeat", "1", "--grace", "5"],
            env={"AGENTLOG_REDIS_URL": redis_url},
        )
        made.append(process)
        await process.start()
        return process

    yield start
    for process in made:
        await process.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A Redis client on the test server."""
    client = redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.mark.timeout(150)
async def test_sigkill_mid_task_redelivers_it_and_the_sink_applies_it_once(
    settings: Settings,
    producer: EventProducer,
    responses: Reader,
    store: redis.Redis,
    spawn: Callable[[str], Awaitable[AgentProcess]],
) -> None:
    await make_topics(settings, sink)
    ns = f"agent-test:{settings.topic_prefix}"
    task = task_event("sink", {"namespace": ns, "hold_s": 120})
    await publish(settings, producer, task)

    first = await spawn("first")
    first_id = await first.agent_id()
    async with asyncio.timeout(60):
        # kill once the effect is fully applied and the handler holds the task: a kill
        # between SET NX and INCR would leave the counter behind the effect
        while await store.get(f"{ns}:applied") is None:  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.05)
    assert await first.signal(signal.SIGKILL) == -signal.SIGKILL  # mid-task

    second = await spawn("second")
    second_id = await second.agent_id()
    answers = await responses.for_tasks({task.task_id}, limit_s=90)
    answer = answers[task.task_id]
    assert isinstance(answer, TaskCompleted), answer
    assert answer.agent_id == second_id
    assert answer.output == {"applied_by": first_id, "applied_now": False}
    runs = [r.decode() for r in await store.lrange(f"{ns}:runs", 0, -1)]
    assert runs == [first_id, second_id], "the task ran twice: killed once, redelivered once"
    assert await store.get(f"{ns}:applied") == b"1", "but its effect was applied exactly once"
    assert [e.envelope.type for e in responses.seen] == ["TaskCompleted"]

    assert await second.signal(signal.SIGTERM) == 0, second.output()
    assert "agents stopped" in second.output()
    async with Reader(settings, settings.topic(AGENTS.name)) as registrations:
        await registrations.until(lambda seen: any(isinstance(e, AgentDeregistered) for e in seen))
    registered = {e.agent_id for e in registrations.seen if isinstance(e, AgentRegistered)}
    gone = [e.agent_id for e in registrations.seen if isinstance(e, AgentDeregistered)]
    assert registered == {first_id, second_id}
    assert gone == [second_id], "a killed agent cannot say goodbye; its heartbeats just stop"


async def test_a_bad_target_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentlog.agents.runtime",
        "run",
        "no_such_module_xyz:agents",
        "--kafka",
        "127.0.0.1:1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2, (out, err)
    assert "error: agent='no_such_module_xyz:agents': module 'no_such_module_xyz' not found" in (
        err.decode()
    )
