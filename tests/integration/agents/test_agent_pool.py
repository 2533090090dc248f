"""AgentPool on a real broker: tasks in, responses out, errors, deadlines, priorities, shutdown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agentlog.agents.runtime import (
    DEADLINE_EXCEEDED,
    OUTPUT_TOO_LARGE,
    Agent,
    AgentPool,
    AgentPoolError,
    RetryableError,
    TaskContext,
    TerminalError,
)
from agentlog.schemas.events import (
    AgentDeregistered,
    AgentHeartbeat,
    AgentRegistered,
    DeadLetter,
    JsonValue,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
)
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import DEADLETTER, tasks_topic
from tests.integration.agents.agent_support import (
    Reader,
    make_topics,
    publish,
    task_event,
    until,
)

pytestmark = pytest.mark.timeout(90)


async def test_a_task_is_handled_and_its_completion_carries_usage(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    async def handle(ctx: TaskContext) -> JsonValue:
        ctx.record_usage(input_tokens=12, output_tokens=4, cost_usd=0.002)
        await ctx.progress(0.5, "halfway")
        await asyncio.sleep(0.05)
        return {"echo": ctx.input, "key": ctx.idempotency_key}

    echo = Agent("echo", handle, concurrency=2)
    await make_topics(settings, echo)
    task = task_event("echo", {"n": 1})
    async with AgentPool(echo, settings) as pool:
        await publish(settings, producer, task)
        answers = await responses.for_tasks({task.task_id})
    done = answers[task.task_id]
    assert isinstance(done, TaskCompleted)
    assert done.output == {"echo": {"n": 1}, "key": task.idempotency_key}
    assert done.agent_id == pool.agent_id
    assert pool.agent_id.startswith("echo-")
    assert (done.usage.input_tokens, done.usage.output_tokens) == (12, 4)
    assert done.usage.cost_usd == pytest.approx(0.002)
    assert 50 <= done.usage.latency_ms < 5000
    assert done.envelope.causation_id == task.envelope.event_id
    assert done.envelope.key == task.workflow_id
    progress = [e for e in responses.seen if isinstance(e, TaskProgress)]
    assert [(p.task_id, p.fraction, p.message) for p in progress] == [
        (task.task_id, 0.5, "halfway")
    ]
    assert pool.stats.completed == 1


async def test_failures_carry_their_kind_and_retryability_and_poison_is_dead_lettered(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    ran: list[str] = []

    async def handle(ctx: TaskContext) -> JsonValue:
        ran.append(ctx.step)
        match ctx.input:
            case {"do": "terminal"}:
                raise TerminalError("bad_input", "the PR number must be positive")
            case {"do": "retryable"}:
                raise RetryableError("rate_limited", "429 from the model API")
            case {"do": "crash"}:
                return {"x": 1 / 0}
            case {"do": "slow"}:
                await asyncio.sleep(30)
            case {"do": "huge"}:
                return "x" * 2_000_000  # more than a Kafka record may hold
        return "fine"

    kind = Agent("flaky", handle, concurrency=4)
    await make_topics(settings, kind)
    soon = datetime.now(UTC) + timedelta(seconds=8)  # room for the group join
    tasks = {
        "terminal": task_event("flaky", {"do": "terminal"}, step="terminal"),
        "retryable": task_event("flaky", {"do": "retryable"}, step="retryable"),
        "crash": task_event("flaky", {"do": "crash"}, step="crash"),
        "slow": task_event("flaky", {"do": "slow"}, step="slow", deadline=soon),
        "late": task_event(
            "flaky", {}, step="late", deadline=datetime.now(UTC) - timedelta(seconds=1)
        ),
        "huge": task_event("flaky", {"do": "huge"}, step="huge"),
        "ok": task_event("flaky", {}, step="ok"),
    }
    topic = settings.topic(tasks_topic("flaky").name)
    await producer.send_raw(topic, b"not an event", key=b"poison")
    await publish(settings, producer, *tasks.values())
    async with AgentPool(kind, settings) as pool:
        answers = await responses.for_tasks({t.task_id for t in tasks.values()})
        # the pool counts an outcome once its response is acknowledged, which can be
        # a moment after a reader already sees that response
        async with asyncio.timeout(10):
            # counters, not events; an answer the reader saw may still wait for its ack
            while pool.stats.in_flight or pool.stats.unacknowledged:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert pool.stats.failed == 6
    got = {name: answers[t.task_id] for name, t in tasks.items()}
    failures = {
        name: (e.error_kind, e.retryable) for name, e in got.items() if isinstance(e, TaskFailed)
    }
    assert failures == {
        "terminal": ("bad_input", False),
        "retryable": ("rate_limited", True),
        "crash": ("ZeroDivisionError", True),
        "slow": (DEADLINE_EXCEEDED, True),
        "late": (DEADLINE_EXCEEDED, True),
        "huge": (OUTPUT_TOO_LARGE, False),
    }
    assert isinstance(got["ok"], TaskCompleted)
    assert got["ok"].output == "fine"
    terminal = got["terminal"]
    assert isinstance(terminal, TaskFailed)
    assert terminal.message == "the PR number must be positive"
    assert "late" not in ran, "a task past its deadline is not run"
    async with Reader(settings, settings.topic(DEADLETTER.name)) as dead:
        [letter] = await dead.until(lambda seen: len(seen) >= 1)
    assert isinstance(letter, DeadLetter)
    assert (letter.original_topic, letter.raw) == (topic, b"not an event")


async def test_buffered_tasks_start_by_priority(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    release = asyncio.Event()
    started: list[tuple[str, int]] = []

    async def handle(ctx: TaskContext) -> JsonValue:
        started.append((ctx.step, ctx.priority))
        if ctx.step == "blocker":
            await release.wait()
        return None

    lanes = Agent("lanes", handle, concurrency=1)
    await make_topics(settings, lanes)
    blocker = task_event("lanes", step="blocker", priority=3)
    queued = [
        task_event("lanes", step=f"{name}-{i}", priority=priority)
        for name, priority in [("low", 1), ("mid", 3), ("high", 5)]
        for i in range(3)
    ]
    async with AgentPool(lanes, settings, max_buffered=20) as pool:
        await publish(settings, producer, blocker)
        await until(lambda: started == [("blocker", 3)])
        await publish(settings, producer, *queued)  # lowest priority first
        await until(lambda: pool.stats.buffered == len(queued))
        release.set()
        await responses.for_tasks({t.task_id for t in [blocker, *queued]})
    priorities = [priority for _, priority in started[1:]]
    assert priorities == [5, 5, 5, 3, 3, 3, 1, 1, 1], started


async def test_registration_heartbeats_and_deregistration(
    settings: Settings, registrations: Reader
) -> None:
    async def handle(ctx: TaskContext) -> JsonValue:
        return None

    kind = Agent("present", handle, concurrency=3, version="7.1")
    await make_topics(settings, kind)
    async with AgentPool(kind, settings, heartbeat_interval=0.2) as pool:
        await registrations.until(
            lambda seen: sum(isinstance(e, AgentHeartbeat) for e in seen) >= 2
        )
        await pool.stop("maintenance")
    await registrations.until(lambda seen: any(isinstance(e, AgentDeregistered) for e in seen))
    mine = [e for e in registrations.seen if getattr(e, "agent_id", None) == pool.agent_id]
    assert all(e.envelope.key == pool.agent_id for e in mine)
    first, *beats, last = mine
    assert isinstance(first, AgentRegistered)
    assert (first.agent_kind, first.concurrency, first.version) == ("present", 3, "7.1")
    assert first.pid > 0
    assert first.host
    assert beats
    assert all(isinstance(b, AgentHeartbeat) for b in beats)
    assert {(b.in_flight, b.capacity) for b in beats if isinstance(b, AgentHeartbeat)} == {(0, 3)}
    assert isinstance(last, AgentDeregistered)
    assert last.reason == "maintenance"


async def test_a_graceful_stop_finishes_running_tasks_and_hands_back_the_rest(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    """quick finishes within the grace period; slow overruns it; 3rd and 4th never start.

    A second pool of the same group gets slow, 3rd and 4th (committed up to
    slow's offset), not quick.
    """
    runs: list[tuple[str, str]] = []
    interrupted: list[bool] = []

    async def handle(ctx: TaskContext) -> JsonValue:
        runs.append((ctx.step, ctx.agent_id))
        first_run = len([s for s, _ in runs if s == ctx.step]) == 1
        if ctx.step == "quick":
            await asyncio.sleep(0.5)
        elif ctx.step == "slow" and first_run:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                interrupted.append(ctx.cancelled.is_set())
                raise
        return ctx.step

    kind = Agent("handback", handle, concurrency=2)
    await make_topics(settings, kind)
    # one workflow id: one partition, so the order of the four is known
    tasks = [
        task_event("handback", workflow_id="wf-hb", step=s, task_id=f"wf-hb/{s}/1/0/1")
        for s in ("quick", "slow", "3rd", "4th")
    ]
    await publish(settings, producer, *tasks)
    async with AgentPool(kind, settings) as first_pool:
        await until(lambda: len(runs) == 2 and first_pool.stats.buffered == 2)
        await first_pool.stop(grace=2)
    assert sorted(step for step, _ in runs) == ["quick", "slow"], "nothing starts once stopping"
    assert interrupted == [True], "slow was told (ctx.cancelled), then cancelled"
    assert first_pool.stats.completed == 1
    assert first_pool.stats.handed_back == 3
    async with AgentPool(kind, settings) as second_pool:
        answers = await responses.for_tasks({t.task_id for t in tasks})
    again = [step for step, agent in runs if agent == second_pool.agent_id]
    assert sorted(again) == ["3rd", "4th", "slow"], "quick was committed, the rest delivered again"
    assert all(isinstance(a, TaskCompleted) for a in answers.values())
    assert answers[tasks[1].task_id].agent_id == second_pool.agent_id
    assert sum(isinstance(e, TaskCompleted) for e in responses.seen) == 4


async def test_a_task_delivered_twice_runs_once(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    release = asyncio.Event()
    runs: list[str] = []

    async def handle(ctx: TaskContext) -> JsonValue:
        runs.append(ctx.task_id)
        await release.wait()
        return len(runs)

    kind = Agent("dedupe", handle, concurrency=4)
    await make_topics(settings, kind)
    task = task_event("dedupe", {})
    async with AgentPool(kind, settings) as pool:
        await publish(settings, producer, task)
        await until(lambda: runs == [task.task_id])
        await publish(settings, producer, task)  # e.g. re-published by a recovering orchestrator
        await until(lambda: pool.stats.duplicates == 1)
        release.set()
        await responses.for_tasks({task.task_id})
        await publish(settings, producer, task)  # after it finished
        await until(lambda: pool.stats.duplicates == 2)
    assert runs == [task.task_id]
    assert sum(isinstance(e, TaskCompleted) for e in responses.seen) == 1


async def test_a_background_failure_surfaces_from_the_pool(
    settings: Settings, producer: EventProducer
) -> None:
    started = asyncio.Event()

    async def handle(ctx: TaskContext) -> JsonValue:
        started.set()
        await producer.stop()  # its response cannot be published any more
        return None

    kind = Agent("doomed", handle)
    await make_topics(settings, kind)
    await publish(settings, producer, task_event("doomed", {}))
    pool = AgentPool(kind, settings, producer=producer)
    with pytest.raises(AgentPoolError, match=r"agent pool 'doomed' \(doomed-.*\) failed: Runtime"):
        async with pool:
            await pool.wait()
    assert started.is_set()
    assert isinstance(pool.failure, RuntimeError)


async def test_fetching_pauses_while_the_buffer_is_full(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    release = asyncio.Event()

    async def handle(ctx: TaskContext) -> JsonValue:
        await release.wait()
        return None

    kind = Agent("bounded", handle, concurrency=1)
    await make_topics(settings, kind)
    tasks = [task_event("bounded", {"i": i}) for i in range(12)]
    await publish(settings, producer, *tasks)
    async with AgentPool(kind, settings, max_buffered=2) as pool:
        polls = 0
        consumer_poll = pool._consumer.poll  # type: ignore[union-attr]

        async def counting_poll(timeout_ms: int = 100) -> list:  # type: ignore[type-arg]
            nonlocal polls
            polls += 1
            return await consumer_poll(timeout_ms=timeout_ms)

        pool._consumer.poll = counting_poll  # type: ignore[union-attr,method-assign]
        await until(lambda: pool.stats.in_flight == 1 and pool.stats.buffered >= 2)
        polls_before = polls
        await asyncio.sleep(1.0)
        # one poll may overshoot by at most one batch of max_buffered records
        assert 2 <= pool.stats.buffered <= 3
        assert polls - polls_before <= 15, "paused polls wait for their timeout, no busy loop"
        release.set()
        await responses.for_tasks({t.task_id for t in tasks})
    assert pool.stats.completed == 12
