"""Workers: at most N handlers at once, the highest priority first, each in a context of its own."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from agentlog.agents.runtime import TaskContext
from agentlog.agents.runtime.buffer import PriorityBuffer
from agentlog.agents.runtime.cancel import RunningHandlers
from agentlog.agents.runtime.definition import Handler
from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.jobs import Job
from agentlog.agents.runtime.workers import Workers
from agentlog.schemas.events import JsonValue, TaskProgress

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


class Pool:
    """Workers with a buffer, and what they finished."""

    def __init__(self, handler: Handler, concurrency: int, grace: float = 5.0) -> None:
        self.buffer: PriorityBuffer[Job[Any]] = PriorityBuffer(100)
        self.handlers = RunningHandlers(grace)
        self.stopping = asyncio.Event()
        self.finished: list[tuple[str, Outcome]] = []
        self.crashes: list[BaseException] = []
        self.took = 0
        self.workers = Workers(
            concurrency,
            self.buffer,
            handler=handler,
            handlers=self.handlers,
            took=self._took,
            finished=lambda job, outcome: self.finished.append((job.task.step, outcome)),
            stopping=self.stopping,
            agent_id="test-agent",
            progress_sink=self._progress,
            watch=self._watch,
        )
        self.workers.start()

    def _took(self) -> None:
        self.took += 1

    async def _progress(self, report: TaskProgress) -> None:
        pass

    def _watch(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.crashes.append(task.exception())  # type: ignore[arg-type]

    async def close(self) -> None:
        self.stopping.set()
        _, pending = await self.workers.drain(1.0)
        assert not pending

    def push(self, step: str, priority: int = 3) -> Job[Any]:
        job: Job[Any] = Job(TaskContext.local({}, step=step, priority=priority).task, [("p", 0)])
        self.buffer.push(job, priority)
        return job


async def until(check: Any, limit: float = 2.0) -> None:
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110 - polling state the test does not own
            await asyncio.sleep(0.001)


async def test_no_more_than_n_handlers_run_at_once_and_all_finish() -> None:
    running, most = 0, 0

    async def handle(ctx: TaskContext) -> JsonValue:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ctx.step

    pool = Pool(handle, concurrency=3)
    for i in range(10):
        pool.push(f"s{i}")
    pool.workers.wake()
    await until(lambda: len(pool.finished) == 10)
    assert most == 3
    assert pool.took == 10
    assert sorted(step for step, _ in pool.finished) == sorted(f"s{i}" for i in range(10))
    assert all(outcome.output == step for step, outcome in pool.finished)
    assert len(pool.workers) == 0
    await pool.close()
    assert not pool.crashes


async def test_handlers_that_never_suspend_run_back_to_back_in_priority_order() -> None:
    async def handle(ctx: TaskContext) -> JsonValue:
        return None

    pool = Pool(handle, concurrency=4)
    for step, priority in (("low", 1), ("high", 5), ("mid", 3), ("high2", 5)):
        pool.push(step, priority)
    pool.workers.wake()
    await until(lambda: len(pool.finished) == 4)
    assert [step for step, _ in pool.finished] == ["high", "high2", "mid", "low"]
    assert pool.workers._spawned <= 2, "one worker ran them all (and one more was woken)"
    await pool.close()


async def test_a_context_variable_a_handler_sets_is_not_seen_by_the_next_handler() -> None:
    seen: list[str] = []

    async def handle(ctx: TaskContext) -> JsonValue:
        seen.append(SEEN.get())
        SEEN.set(ctx.step)
        return None

    pool = Pool(handle, concurrency=1)
    for i in range(3):
        pool.push(f"s{i}")
    pool.workers.wake()
    await until(lambda: len(pool.finished) == 3)
    assert seen == ["", "", ""], "each handler starts in a fresh context, as in a task of its own"
    await pool.close()
    assert not pool.crashes


async def test_a_cancelled_handler_is_answered_and_its_worker_runs_the_next_one() -> None:
    started = asyncio.Event()

    async def handle(ctx: TaskContext) -> JsonValue:
        if ctx.step == "stubborn":
            started.set()
            await asyncio.sleep(30)  # ignores ctx.cancelled: cancelled after the grace
        return ctx.step

    pool = Pool(handle, concurrency=1, grace=0.01)
    stubborn = pool.push("stubborn")
    pool.workers.wake()
    await started.wait()
    pool.push("next")
    assert pool.handlers.cancel(stubborn.task.task_id, "the workflow is over")
    await until(lambda: len(pool.finished) == 2)
    (first, cancelled), (second, done) = pool.finished
    assert (first, second) == ("stubborn", "next")
    assert cancelled.failure is not None
    assert cancelled.failure.kind == "cancelled"
    assert done.output == "next"
    assert pool.workers._spawned == 1, "the worker absorbed its cancellation and went on"
    await pool.close()
    assert not pool.crashes


async def test_drain_lets_running_jobs_finish_and_reports_those_still_running() -> None:
    release = asyncio.Event()

    async def handle(ctx: TaskContext) -> JsonValue:
        if ctx.step == "slow":
            await asyncio.sleep(30)
        else:
            await release.wait()
        return ctx.step

    pool = Pool(handle, concurrency=3)
    pool.push("quick")
    slow = pool.push("slow")
    pool.workers.wake()
    await until(lambda: len(pool.workers) == 2)
    pool.stopping.set()
    waiting = pool.push("waiting")  # never starts: stopping
    release.set()
    unfinished, pending = await pool.workers.drain(0.2)
    assert unfinished == [slow]
    assert [step for step, _ in pool.finished] == ["quick"]
    assert len(pending) == 1
    assert list(pool.buffer) == [waiting]
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    assert not pool.crashes
