"""The agent runtime (SDK): write an agent as an async handler, run it as a pool.

::

    from agentlog.agents.runtime import TaskContext, TerminalError, agent

    @agent("reviewer", concurrency=4)
    async def review(ctx: TaskContext) -> dict:
        if "pr" not in ctx.input:
            raise TerminalError("bad_input", "the task input has no 'pr'")
        await ctx.progress(0.5, "reading the diff")
        return {"approved": True}

Run it with ``agentlog agent run mymodule:review`` (or ``python -m
agentlog.agents.runtime run mymodule:review``), or in code with
``async with AgentPool(review, settings) as pool: await pool.wait()``.
See ``docs/agents.md``.

Names load on first use, so importing this package (or its ``cli``) stays cheap
until an agent actually runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlog.agents.runtime.consumer import group_id_for
    from agentlog.agents.runtime.context import LocalTaskContext, TaskContext, UsageReport
    from agentlog.agents.runtime.definition import Agent, Handler, agent
    from agentlog.agents.runtime.errors import (
        DEADLINE_EXCEEDED,
        INVALID_OUTPUT,
        OUTPUT_TOO_LARGE,
        AgentPoolError,
        Failure,
        RetryableError,
        TaskError,
        TerminalError,
        failure_for,
    )
    from agentlog.agents.runtime.execute import Outcome, response_for, run_task
    from agentlog.agents.runtime.pool import AgentPool, PoolStats
    from agentlog.agents.runtime.runner import AgentRunner, load_agents, topics_for

#: Public name -> the submodule that defines it.
_WHERE: dict[str, str] = {
    "Agent": "definition",
    "Handler": "definition",
    "agent": "definition",
    "group_id_for": "consumer",
    "LocalTaskContext": "context",
    "TaskContext": "context",
    "UsageReport": "context",
    "DEADLINE_EXCEEDED": "errors",
    "INVALID_OUTPUT": "errors",
    "OUTPUT_TOO_LARGE": "errors",
    "AgentPoolError": "errors",
    "Failure": "errors",
    "RetryableError": "errors",
    "TaskError": "errors",
    "TerminalError": "errors",
    "failure_for": "errors",
    "Outcome": "execute",
    "response_for": "execute",
    "run_task": "execute",
    "AgentPool": "pool",
    "PoolStats": "pool",
    "AgentRunner": "runner",
    "load_agents": "runner",
    "topics_for": "runner",
}

__all__ = [
    "DEADLINE_EXCEEDED",
    "INVALID_OUTPUT",
    "OUTPUT_TOO_LARGE",
    "Agent",
    "AgentPool",
    "AgentPoolError",
    "AgentRunner",
    "Failure",
    "Handler",
    "LocalTaskContext",
    "Outcome",
    "PoolStats",
    "RetryableError",
    "TaskContext",
    "TaskError",
    "TerminalError",
    "UsageReport",
    "agent",
    "failure_for",
    "group_id_for",
    "load_agents",
    "response_for",
    "run_task",
    "topics_for",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
