"""Cancellation in the agent runtime: the job index and the running handlers."""

from __future__ import annotations

import asyncio

from agentlog.agents.runtime import TaskContext
from agentlog.agents.runtime.cancel import RunningHandlers
from agentlog.agents.runtime.jobs import Admission, JobIndex
from agentlog.schemas.events import JsonValue


def test_a_cancelled_waiting_job_is_returned_once_and_its_id_remembered() -> None:
    ctx = TaskContext.local({"x": 1})
    jobs: JobIndex[str] = JobIndex(remember=2)
    admission, job = jobs.admit(ctx.task, "p0", 5)
    assert admission is Admission.NEW
    assert jobs.cancel(ctx.task_id, "done") is job
    assert job is not None
    assert job.cancelled == "done"
    assert jobs.cancel(ctx.task_id, "again") is None  # a duplicate TaskCancelled
    jobs.finish(job)
    assert jobs.admit(ctx.task, "p0", 9) == (Admission.CANCELLED, None)


def test_a_cancellation_that_arrives_first_drops_the_task_later() -> None:
    jobs: JobIndex[str] = JobIndex(remember=1)
    first, second = TaskContext.local(step="a"), TaskContext.local(step="b")
    assert jobs.cancel(first.task_id, "") is None
    assert jobs.admit(first.task, "p0", 1) == (Admission.CANCELLED, None)
    jobs.cancel(second.task_id, "")  # bounded: the first id is forgotten
    assert jobs.admit(first.task, "p0", 2)[0] is Admission.NEW


async def test_a_running_handler_sees_the_flag_then_is_cancelled_after_the_grace() -> None:
    handlers = RunningHandlers(grace=0.05)
    saw: list[bool] = []

    async def stubborn(ctx: TaskContext) -> JsonValue:
        await ctx.cancelled.wait()
        saw.append(True)
        await asyncio.sleep(10)
        return "never"

    ctx = TaskContext.local()
    running = asyncio.create_task(handlers.run(stubborn, ctx))
    await asyncio.sleep(0.01)
    assert handlers.cancel(ctx.task_id, "workflow wf is cancelled")
    assert not handlers.cancel(ctx.task_id, "twice")
    outcome = await asyncio.wait_for(running, 2)
    assert saw == [True]
    assert outcome.failure is not None
    assert outcome.failure.kind == "cancelled"
    assert not outcome.failure.retryable
    assert "workflow wf is cancelled" in outcome.failure.message
    assert len(handlers) == 0


async def test_a_cooperative_handler_that_returns_is_still_answered_as_cancelled() -> None:
    handlers = RunningHandlers(grace=5)

    async def polite(ctx: TaskContext) -> JsonValue:
        await ctx.cancelled.wait()
        return "stopped early"

    ctx = TaskContext.local()
    running = asyncio.create_task(handlers.run(polite, ctx))
    await asyncio.sleep(0.01)
    handlers.cancel(ctx.task_id, "")
    outcome = await asyncio.wait_for(running, 1)
    assert outcome.failure is not None
    assert outcome.failure.kind == "cancelled"


async def test_cancelling_the_caller_cancels_the_handler_too() -> None:
    handlers = RunningHandlers()
    interrupted: list[bool] = []

    async def slow(ctx: TaskContext) -> JsonValue:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.append(True)
            raise
        return None

    running = asyncio.create_task(handlers.run(slow, TaskContext.local()))
    await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.wait([running])
    assert running.cancelled()
    assert interrupted == [True]
