"""``Agent``: an agent kind, its async handler and how many tasks one process runs at once."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentlog.agents.runtime.context import TaskContext
from agentlog.errors import ConfigError
from agentlog.schemas.events import JsonValue
from agentlog.streams.topics import tasks_topic

#: ``async def handler(ctx: TaskContext) -> JsonValue``.
Handler = Callable[[TaskContext], Awaitable[JsonValue]]

_MAX_CONCURRENCY = 10_000


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent kind and the async function that handles its tasks.

    Attributes:
        kind: the agent kind: tasks arrive on ``tasks.<kind>`` (1-64 of
            ``[a-z0-9_-]``), the kind a workflow step names in ``agent=``.
        handler: ``async def handler(ctx: TaskContext) -> JsonValue``; the
            return value is the step output. Raise :class:`RetryableError` or
            :class:`TerminalError` to fail the task.
        concurrency: tasks one process runs at the same time.
        version: the handler's version, announced in ``AgentRegistered``.
        description: one line for humans (``agentlog agent run`` prints it).

    Raises:
        ConfigError: naming the field, the value and the fix.
    """

    kind: str
    handler: Handler
    concurrency: int = 1
    version: str = "1"
    description: str = ""

    def __post_init__(self) -> None:
        tasks_topic(self.kind)  # raises ConfigError for a kind that cannot name a topic
        if not inspect.iscoroutinefunction(self.handler):
            raise ConfigError(
                f"Agent({self.kind!r}).handler",
                getattr(self.handler, "__qualname__", self.handler),
                "is not an async function",
                "Define it as `async def handler(ctx: TaskContext) -> JsonValue`.",
            )
        if not 1 <= self.concurrency <= _MAX_CONCURRENCY:
            raise ConfigError(
                f"Agent({self.kind!r}).concurrency",
                self.concurrency,
                f"must be within 1..{_MAX_CONCURRENCY}",
                "Pass concurrency=N with N the tasks one process may run at once.",
            )


def agent(
    kind: str, *, concurrency: int = 1, version: str = "1", description: str = ""
) -> Callable[[Handler], Agent]:
    """Decorator form of :class:`Agent`::

        @agent("reviewer", concurrency=4)
        async def review(ctx: TaskContext) -> JsonValue:
            return {"approved": True}

    ``review`` is then the :class:`Agent`; its function is ``review.handler``.
    The description defaults to the first line of the function's docstring.
    """

    def wrap(handler: Handler) -> Agent:
        doc = (inspect.getdoc(handler) or "").strip().splitlines()
        return Agent(
            kind=kind,
            handler=handler,
            concurrency=concurrency,
            version=version,
            description=description or (doc[0] if doc else ""),
        )

    return wrap
