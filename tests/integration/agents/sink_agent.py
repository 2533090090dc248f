"""An agent whose side effect goes to an idempotent sink: Redis, keyed by the idempotency key.

Used by the process tests (``python -m agentlog.agents.runtime run
tests.integration.agents.sink_agent:sink``). Each run appends the agent id to
``<ns>:runs``; the effect is ``SET <ns>:effect:<idempotency key> NX``, and a
run that applied it counts ``<ns>:applied`` and then holds the task for
``hold_s`` seconds, so a test can kill the process mid-task. A run that finds
the effect already applied answers at once with who applied it.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as redis

from agentlog.agents.runtime import TaskContext, TerminalError, agent
from agentlog.schemas.events import JsonValue


@agent("sink", concurrency=2)
async def sink(ctx: TaskContext) -> JsonValue:
    """Applies one effect per idempotency key to Redis."""
    url = os.environ.get("AGENTLOG_REDIS_URL")
    if not isinstance(ctx.input, dict) or url is None:
        raise TerminalError("bad_setup", "needs AGENTLOG_REDIS_URL and an input object")
    ns = str(ctx.input["namespace"])
    client = redis.from_url(url)
    try:
        await client.rpush(f"{ns}:runs", ctx.agent_id)
        applied = await client.set(f"{ns}:effect:{ctx.idempotency_key}", ctx.agent_id, nx=True)
        if applied:
            await client.incr(f"{ns}:applied")
            ctx.log.info("applied the effect; holding the task")
            await asyncio.sleep(float(ctx.input["hold_s"]))  # SIGKILL lands here
        owner = await client.get(f"{ns}:effect:{ctx.idempotency_key}")
    finally:
        await client.aclose()
    return {"applied_by": owner.decode() if owner else None, "applied_now": bool(applied)}
