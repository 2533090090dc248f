"""What a handler gets: the task, a cancellation flag, progress reports, usage and a logger."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentlog.agents.runtime.errors import TerminalError
from agentlog.schemas.events import (
    PRIORITY_DEFAULT,
    JsonValue,
    TaskProgress,
    TaskRequested,
    TaskUsage,
    new_envelope,
)

#: Publishes one progress report (the pool sends it to ``responses``).
ProgressSink = Callable[[TaskProgress], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Tokens and cost a handler reported so far (latency is measured by the pool)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def with_latency(self, latency_ms: float) -> TaskUsage:
        """The ``TaskUsage`` record of a finished task."""
        return TaskUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            latency_ms=latency_ms,
        )


_NO_USAGE = UsageReport()


class TaskLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Appends ``[workflow=… step=… task=… agent=…]`` to every line a handler logs."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the task's ids to the message and to the record's ``extra``."""
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        ids = " ".join(f"{k}={extra[k]}" for k in ("workflow", "step", "task", "agent"))
        return f"{msg} [{ids}]", kwargs


class TaskContext:
    """One task as its handler sees it.

    Attributes:
        task: the ``TaskRequested`` event being handled.
        agent_id: the agent process running it.
        cancelled: set when the result is no longer wanted (the deadline passed,
            or the pool is shutting down and its grace period ran out); the
            handler is cancelled right after, so long synchronous work in
            threads should check it.
    """

    __slots__ = ("_log", "_logger", "_progress_sink", "_usage", "agent_id", "cancelled", "task")

    def __init__(
        self,
        task: TaskRequested,
        *,
        agent_id: str,
        progress_sink: ProgressSink,
        logger: logging.Logger | None = None,
    ) -> None:
        """Args:
        task: the task to handle.
        agent_id: the agent process running it.
        progress_sink: where :meth:`progress` reports go.
        logger: the logger behind :attr:`log` (``agentlog.agent.<kind>`` if None).
        """
        self.task = task
        self.agent_id = agent_id
        self.cancelled = asyncio.Event()
        self._progress_sink = progress_sink
        self._usage = _NO_USAGE
        self._logger = logger
        self._log: TaskLogAdapter | None = None

    @property
    def log(self) -> TaskLogAdapter:
        """A logger whose lines carry the workflow, step, task and agent ids."""
        if self._log is None:  # made on first use: most handlers of a busy pool never log
            task = self.task
            base = self._logger or logging.getLogger(f"agentlog.agent.{task.agent_kind}")
            ids = {"workflow": task.workflow_id, "step": task.step, "task": task.task_id}
            self._log = TaskLogAdapter(base, {**ids, "agent": self.agent_id})
        return self._log

    @classmethod
    def local(
        cls,
        input: JsonValue = None,
        *,
        agent_kind: str = "local",
        workflow_id: str = "wf-local",
        step: str = "step",
        attempt: int = 1,
        deadline: datetime | None = None,
        priority: int = PRIORITY_DEFAULT,
        fencing_tokens: Mapping[str, int] | None = None,
        idempotency_key: str | None = None,
    ) -> LocalTaskContext:
        """A context outside any pool, to call a handler in a unit test or a script.

        Progress reports are kept in ``progress_reports`` instead of being published.
        """
        task = TaskRequested(
            envelope=new_envelope("TaskRequested", workflow_id, source="local"),
            task_id=f"{workflow_id}/{step}/1/0/{attempt}",
            workflow_id=workflow_id,
            step=step,
            attempt=attempt,
            agent_kind=agent_kind,
            input=input,
            deadline=deadline,
            idempotency_key=idempotency_key or f"{workflow_id}/{step}/1/0",
            priority=priority,
            fencing_tokens=dict(fencing_tokens or {}),
        )
        return LocalTaskContext(task, agent_id=f"{agent_kind}-local-{uuid.uuid4().hex[:8]}")

    # -- the task's fields ---------------------------------------------------------

    @property
    def input(self) -> JsonValue:
        """The task input (decoded JSON)."""
        return self.task.input

    @property
    def task_id(self) -> str:
        """Id of this attempt: ``<workflow>/<step>/<run>/<item>/<attempt>``."""
        return self.task.task_id

    @property
    def workflow_id(self) -> str:
        """The workflow the task belongs to."""
        return self.task.workflow_id

    @property
    def step(self) -> str:
        """The step of the workflow the task runs."""
        return self.task.step

    @property
    def attempt(self) -> int:
        """The attempt number, from 1."""
        return self.task.attempt

    @property
    def deadline(self) -> datetime | None:
        """When the orchestrator stops waiting for this attempt (aware UTC), or None."""
        return self.task.deadline

    @property
    def idempotency_key(self) -> str:
        """Equal for every attempt and delivery of one step item: key side effects by it."""
        return self.task.idempotency_key

    @property
    def fencing_tokens(self) -> Mapping[str, int]:
        """Lock resource -> fencing token of the locks the step holds."""
        return self.task.fencing_tokens

    @property
    def priority(self) -> int:
        """1 (lowest) to 5."""
        return self.task.priority

    def fencing_token(self, resource: str) -> int:
        """The fencing token of ``resource``; pass it to every write the lock protects.

        Raises:
            TerminalError: kind ``missing_lock`` when the step holds no lock on ``resource``.
        """
        token = self.task.fencing_tokens.get(resource)
        if token is None:
            held = ", ".join(sorted(self.task.fencing_tokens)) or "none"
            raise TerminalError(
                "missing_lock",
                f"step {self.step!r} holds no lock on {resource!r} (it holds: {held}); "
                "declare the lock on the step in the workflow spec",
            )
        return token

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once passed), or None without a deadline."""
        if self.task.deadline is None:
            return None
        return (self.task.deadline - datetime.now(UTC)).total_seconds()

    # -- reporting -------------------------------------------------------------------

    async def progress(self, fraction: float | None = None, message: str = "") -> None:
        """Publish a ``TaskProgress`` (``fraction`` 0.0-1.0, or None when unknown).

        Raises:
            ValueError: ``fraction`` is outside 0.0-1.0.
        """
        if fraction is not None and not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"progress fraction={fraction!r} must be within 0.0-1.0, or None")
        task = self.task
        report = TaskProgress(
            envelope=new_envelope(
                "TaskProgress",
                task.workflow_id,
                source=self.agent_id,
                correlation_id=task.envelope.correlation_id,
                causation_id=task.envelope.event_id,
                traceparent=task.envelope.traceparent,
            ),
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            step=task.step,
            attempt=task.attempt,
            fraction=fraction,
            message=message,
            agent_id=self.agent_id,
        )
        await self._progress_sink(report)

    def record_usage(
        self, *, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0
    ) -> None:
        """Add tokens and cost to what ``TaskCompleted.usage`` reports (call once per LLM call)."""
        if input_tokens < 0 or output_tokens < 0 or cost_usd < 0:
            raise ValueError(
                f"usage must not be negative (input_tokens={input_tokens}, "
                f"output_tokens={output_tokens}, cost_usd={cost_usd})"
            )
        u = self._usage
        self._usage = UsageReport(
            u.input_tokens + input_tokens, u.output_tokens + output_tokens, u.cost_usd + cost_usd
        )

    @property
    def usage(self) -> UsageReport:
        """Tokens and cost recorded so far."""
        return self._usage


class LocalTaskContext(TaskContext):
    """A :class:`TaskContext` that keeps progress reports in memory (see ``TaskContext.local``)."""

    __slots__ = ("progress_reports",)

    def __init__(self, task: TaskRequested, *, agent_id: str) -> None:
        """Args:
        task: the task to handle.
        agent_id: a made-up agent id.
        """
        self.progress_reports: list[TaskProgress] = []
        super().__init__(task, agent_id=agent_id, progress_sink=self._keep)

    async def _keep(self, report: TaskProgress) -> None:
        self.progress_reports.append(report)
