"""Timer commits of agent processes: never past an unanswered task; a SIGKILL loses nothing.

A pool settles a task when its answer is acknowledged and commits the settled
offsets on a timer, off the task path. So a crash redelivers the tasks not
answered yet plus those answered since the last commit, and nothing else.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.schemas.events import Event, TaskCompleted, TaskProgress, TaskRequested
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import tasks_topic
from tests.integration.agents.agent_support import (
    AgentProcess,
    Reader,
    committed,
    make_topics,
    task_event,
    until_committed,
)
from tests.integration.agents.hold_agent import hold

pytestmark = pytest.mark.timeout(180)

TARGET = "tests.integration.agents.hold_agent:hold"
Spawn = Callable[..., Awaitable[AgentProcess]]


@pytest.fixture
async def spawn(settings: Settings, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start an agent process of the hold agent (killed at teardown if still running)."""
    made: list[AgentProcess] = []

    async def start(name: str, *args: str, holds: bool = False) -> AgentProcess:
        env = {"HOLD_TASKS": "1" if holds else "0"}
        log = tmp_path / f"{name}.log"
        process = AgentProcess(settings, TARGET, log, args=["--grace", "5", *args], env=env)
        made.append(process)
        await process.start()
        return process

    yield start
    for process in made:
        await process.close()


async def send(
    settings: Settings, producer: EventProducer, task: TaskRequested, partition: int | None = None
) -> RecordMetadata:
    """Publish ``task`` (to ``partition`` if given) and return where it landed."""
    topic = settings.topic(tasks_topic("hold").name)
    if partition is None:
        return await producer.send(topic, task)
    raw = producer.codec.encode(task)
    future = await producer.send_raw(topic, raw, key=task.workflow_id.encode(), partition=partition)
    return await future


def answered_by(seen: Sequence[Event], agent_id: str) -> set[str]:
    return {e.task_id for e in seen if isinstance(e, TaskCompleted) and e.agent_id == agent_id}


async def test_commits_stop_below_an_unanswered_task_and_a_sigkill_redelivers_only_the_rest(
    settings: Settings, producer: EventProducer, responses: Reader, spawn: Spawn
) -> None:
    await make_topics(settings, hold)
    first = await spawn("first", "--commit-interval", "0.1", holds=True)
    first_id = await first.agent_id()
    wf = "wf-commits"
    done = [task_event("hold", {"n": n}, workflow_id=wf, step=f"s{n}") for n in range(3)]
    placed = [await send(settings, producer, t) for t in done]
    tp = TopicPartition(placed[0].topic, placed[0].partition)
    await responses.until(lambda seen: answered_by(seen, first_id) == {t.task_id for t in done})
    after_done = placed[-1].offset + 1

    async def committed_is(offset: int) -> bool:
        return await committed(settings, "hold", tp) == offset

    await until_committed(settings, "hold", tp, after_done)  # the timer commits answered tasks

    held = task_event("hold", {"n": 3, "hold": True}, workflow_id=wf, step="s3")
    after = task_event("hold", {"n": 4}, workflow_id=wf, step="s4")
    assert (await send(settings, producer, held)).offset == after_done
    await send(settings, producer, after)

    def holding_and_after_answered(seen: list[Event]) -> bool:
        progress = {e.task_id for e in seen if isinstance(e, TaskProgress)}
        return held.task_id in progress and after.task_id in answered_by(seen, first_id)

    await responses.until(holding_and_after_answered)
    # a commit that surely comes after `after` was acknowledged: a task on the other
    # partition, published only now, answered and committed
    other_part = 1 - tp.partition
    marker = task_event("hold", {"n": 5}, workflow_id="wf-marker")
    marker_at = await send(settings, producer, marker, partition=other_part)
    other = TopicPartition(tp.topic, other_part)
    await until_committed(settings, "hold", other, marker_at.offset + 1)
    assert await committed_is(after_done), "never past the held task, though `after` is answered"

    assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
    second = await spawn("second")
    second_id = await second.agent_id()
    expected = {held.task_id, after.task_id}
    await responses.until(lambda seen: answered_by(seen, second_id) >= expected, limit_s=90)
    assert await second.signal(signal.SIGTERM) == 0, second.output()

    seen = await responses.to_end()
    assert answered_by(seen, second_id) == expected, "only the uncommitted tasks came again"
    everything = {t.task_id for t in (*done, held, after, marker)}
    assert {e.task_id for e in seen if isinstance(e, TaskCompleted)} == everything
    assert await committed_is(after_done + 2), "the second process committed all on stop"


async def test_a_sigkill_before_the_timer_commit_redelivers_the_answered_tasks(
    settings: Settings, producer: EventProducer, responses: Reader, spawn: Spawn
) -> None:
    await make_topics(settings, hold)
    first = await spawn("first", "--commit-interval", "3600")
    first_id = await first.agent_id()
    tasks = [task_event("hold", {"n": n}, workflow_id="wf-late", step=f"s{n}") for n in range(3)]
    placed = [await send(settings, producer, t) for t in tasks]
    tp = TopicPartition(placed[0].topic, placed[0].partition)
    ids = {t.task_id for t in tasks}
    await responses.until(lambda seen: answered_by(seen, first_id) == ids)
    assert await committed(settings, "hold", tp) is None, "answered, acknowledged, not committed"

    assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
    second = await spawn("second")
    second_id = await second.agent_id()
    await responses.until(lambda seen: answered_by(seen, second_id) == ids, limit_s=90)
    assert await second.signal(signal.SIGTERM) == 0, second.output()
    assert await committed(settings, "hold", tp) == placed[-1].offset + 1
