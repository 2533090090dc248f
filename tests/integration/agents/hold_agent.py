"""An agent that answers at once, or holds a task until it is killed (for the commit tests).

Used by the process tests (``python -m agentlog.agents.runtime run
tests.integration.agents.hold_agent:hold``). A task whose input has
``"hold": true`` reports progress (``holding``) and then holds, but only in a
process started with ``HOLD_TASKS=1``: a process started without it answers
that task at once, like every other.
"""

from __future__ import annotations

import asyncio
import os

from agentlog.agents.runtime import TaskContext, agent
from agentlog.schemas.events import JsonValue


@agent("hold", concurrency=4)
async def hold(ctx: TaskContext) -> JsonValue:
    """Echoes ``input["n"]``; holds tasks marked ``hold`` where HOLD_TASKS=1."""
    assert isinstance(ctx.input, dict)
    if ctx.input.get("hold") and os.environ.get("HOLD_TASKS") == "1":
        await ctx.progress(None, "holding")
        await asyncio.sleep(3600)  # SIGKILL lands here
    return {"n": ctx.input["n"]}
