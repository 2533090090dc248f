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
    runner: asyncio.Task[Outcome]
    reason: str | None = None
    timer: asyncio.TimerHandle | None = None


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

    async def run(self, handler: Handler, ctx: TaskContext) -> Outcome:
        """Run ``handler(ctx)`` (see :func:`run_task`) in a task of its own; never raises.

        Raises:
            asyncio.CancelledError: only when the caller itself is cancelled
                (the handler is cancelled with it).
        """
        runner = asyncio.create_task(run_task(handler, ctx), name=f"handler-{ctx.task_id}")
        entry = self._running[ctx.task_id] = _Running(ctx, runner)
        started = time.monotonic()
        outcome: Outcome | None = None
        try:
            outcome = await runner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # re-raise unless it is only the handler that was cancelled, by cancel() below
            if entry.reason is None or (current is not None and current.cancelling()):
                raise
        finally:
            self._running.pop(ctx.task_id, None)
            if entry.timer is not None:
                entry.timer.cancel()
        if entry.reason is None and outcome is not None:
            return outcome
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
        if not entry.runner.done():
            loop = asyncio.get_running_loop()
            entry.timer = loop.call_later(self.grace, _cancel_late, entry)
        return True


def _cancel_late(entry: _Running) -> None:
    if entry.runner.done():
        return
    task = entry.ctx.task
    logger.info(
        "task %s (workflow %s step %s) still runs after ctx.cancelled was set: cancelling it",
        task.task_id,
        task.workflow_id,
        task.step,
    )
    entry.runner.cancel()
