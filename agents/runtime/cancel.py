"""Handlers running in a pool, each in its own asyncio task, so a ``TaskCancelled`` can stop one.

Stopping is cooperative first: ``ctx.cancelled`` is set at once, and the
handler's task is cancelled only when it is still running ``grace`` seconds
later. Whatever the handler then does (returns, raises, swallows the
cancellation), a cancelled task is answered with one ``TaskFailed`` of kind
``cancelled``, not retryable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentlog.agents.runtime.context import TaskContext
from agentlog.agents.runtime.definition import Handler
from agentlog.agents.runtime.errors import cancelled_failure
from agentlog.agents.runtime.execute import Outcome, run_task

logger = logging.getLogger(__name__)

#: Seconds a cancelled handler gets, after ``ctx.cancelled`` is set, before its task is cancelled.
DEFAULT_CANCEL_GRACE = 2.0


@dataclass(slots=True, eq=False)
class _Running:
    ctx: TaskContext
    runner: asyncio.Task[Any]  # the task running the handler (the caller of run())
    reason: str | None = None
    timer: asyncio.TimerHandle | None = None
    interrupted: bool = False  # runner.cancel() was called by _cancel_late
    finished: bool = False


class RunningHandlers:
    """The handlers running now, by task id.

    Args:
        grace: seconds between setting ``ctx.cancelled`` and cancelling the handler.
    """

    def __init__(self, grace: float = DEFAULT_CANCEL_GRACE) -> None:
        if grace < 0:
            raise ValueError(f"cancel grace={grace} must be 0 or more seconds")
        self.grace = grace
        self._running: dict[str, _Running] = {}

    def __len__(self) -> int:
        return len(self._running)

    def contexts(self) -> Iterator[TaskContext]:
        """The contexts of the running handlers."""
        return (entry.ctx for entry in list(self._running.values()))

    async def run(
        self, handler: Handler, ctx: TaskContext, *, runner: asyncio.Task[Any] | None = None
    ) -> Outcome:
        """Run ``handler(ctx)`` (see :func:`run_task`) in the calling task; never raises.

        The handler runs in the caller's own asyncio task (no task of its own:
        one per task is enough), and :meth:`cancel` cancels that task after
        the grace period; that one cancellation is absorbed here (the task's
        cancellation count is back where it was, so it may run more handlers)
        and answered as ``cancelled``.

        Args:
            handler: the agent's handler.
            ctx: the task's context.
            runner: the calling task, when the caller knows it already.

        Raises:
            asyncio.CancelledError: only when the caller is cancelled by anyone else
                (shutdown); the handler is interrupted with it.
        """
        if runner is None:
            runner = asyncio.current_task()
            if runner is None:
                raise RuntimeError("RunningHandlers.run must be awaited in an asyncio task")
        task_id = ctx.task.task_id
        running = self._running
        entry = running[task_id] = _Running(ctx, runner)
        started = time.monotonic()
        outcome: Outcome | None = None
        try:
            outcome = await run_task(handler, ctx)
        except asyncio.CancelledError:
            # absorb only our own cancel() (after the grace); anyone else's still cancels
            if not entry.interrupted or runner.uncancel() > 0:
                raise
        finally:
            entry.finished = True
            running.pop(task_id, None)
            if entry.timer is not None:
                entry.timer.cancel()
        if entry.reason is None and outcome is not None:
            return outcome  # not cancelled (so not interrupted either): the usual case
        if entry.interrupted and outcome is not None and runner.uncancel() > 0:
            # the handler swallowed our cancellation and returned; someone else cancels too
            raise asyncio.CancelledError
        latency_ms = round((time.monotonic() - started) * 1000.0, 3)
        failure = cancelled_failure(entry.reason or "")
        return Outcome(None, failure, ctx.usage.with_latency(latency_ms))

    def cancel(self, task_id: str, reason: str) -> bool:
        """Set the handler's ``ctx.cancelled`` now and cancel it after the grace period.

        Returns:
            False when no handler of ``task_id`` runs (or it was cancelled already).
        """
        entry = self._running.get(task_id)
        if entry is None or entry.reason is not None:
            return False
        entry.reason = reason
        entry.ctx.cancelled.set()
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(self.grace, _cancel_late, entry)
        return True


def _cancel_late(entry: _Running) -> None:
    if entry.finished:
        return
    task = entry.ctx.task
    logger.info(
        "task %s (workflow %s step %s) still runs after ctx.cancelled was set: cancelling it",
        task.task_id,
        task.workflow_id,
        task.step,
    )
    entry.interrupted = True
    entry.runner.cancel()
