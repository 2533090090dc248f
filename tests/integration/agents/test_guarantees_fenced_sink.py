"""Guarantee: a duplicate delivery of a task changes no fenced sink (docs/guarantees.md).

A task carries the fencing token of the lease its attempt holds, so every
delivery of that attempt carries the same token. A sink fenced with
``strict=True`` (PostgreSQL ``PostgresFence``, Redis ``fenced_script``) accepts
one write per token: the first run of the task writes, a redelivery's write is
refused, and the next attempt (a new grant, a newer token) writes again.

The redelivery here is a real one: the first pool is stopped while the
handler still runs after its write, so the task is handed back uncommitted
and the consumer group delivers it to a second pool, which has no memory of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from agentlog.agents.locks.fencing import PostgresFence, RedisFence, fenced_script
from agentlog.agents.runtime import Agent, AgentPool, TaskContext
from agentlog.schemas.events import JsonValue, TaskCompleted, TaskRequested
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from tests.integration.agents.agent_support import Reader, make_topics, publish, task_event, until

RESOURCE = "repo:acme/fenced"
PUSH = fenced_script("return redis.call('RPUSH', KEYS[1], ARGV[1])", strict=True)


@pytest.fixture
async def sinks(pg: asyncpg.Pool) -> AsyncIterator[tuple[PostgresFence, str]]:
    """A strict PostgreSQL fence and an append-only effects table (no unique key)."""
    suffix = uuid.uuid4().hex[:12]
    fence = PostgresFence(f"fence_{suffix}", strict=True)
    effects = f"effects_{suffix}"
    await fence.create_table(pg)
    await pg.execute(f"CREATE TABLE {effects} (task_id text, agent_id text, token bigint)")
    try:
        yield fence, effects
    finally:
        await pg.execute(f"DROP TABLE IF EXISTS {effects}, {fence.table}")


def with_token(task: TaskRequested, token: int) -> TaskRequested:
    """The task as the orchestrator publishes it once its attempt holds the lock."""
    return dataclasses.replace(task, fencing_tokens={RESOURCE: token})


@pytest.mark.timeout(150)
async def test_a_redelivered_task_changes_no_strictly_fenced_sink(
    *,
    settings: Settings,
    producer: EventProducer,
    responses: Reader,
    pg: asyncpg.Pool,
    rd: aioredis.Redis,
    sinks: tuple[PostgresFence, str],
) -> None:
    fence, effects = sinks
    redis_fence = RedisFence(rd, prefix=f"{settings.topic_prefix}:fence:")
    log_key = f"{settings.topic_prefix}:{{{RESOURCE}}}:effects"
    runs: list[tuple[str, str]] = []
    hang_first = asyncio.Event()  # set: the next run hangs after its writes

    async def handle(ctx: TaskContext) -> JsonValue:
        token = ctx.fencing_token(RESOURCE)
        runs.append((ctx.agent_id, ctx.task_id))
        sql = f"INSERT INTO {effects} (task_id, agent_id, token) VALUES ($1, $2, $3)"
        wrote = await fence.apply(
            pg, RESOURCE, token, lambda c: c.execute(sql, ctx.task_id, ctx.agent_id, token)
        )
        pushed = await redis_fence.run(PUSH, RESOURCE, token, [log_key], [ctx.task_id])
        if hang_first.is_set():
            hang_first.clear()
            await asyncio.Event().wait()  # the process "dies" here, before its answer
        return {"pg": wrote.applied, "redis": pushed.applied, "current": wrote.current}

    kind = Agent("fenced", handle, concurrency=1)
    await make_topics(settings, kind)
    first_attempt = with_token(task_event("fenced", {}, attempt=1), 7)
    second_attempt = with_token(
        task_event("fenced", {}, workflow_id=first_attempt.workflow_id, attempt=2), 8
    )

    # 1. the first pool writes under token 7, then stops before answering: handed back
    hang_first.set()
    first = AgentPool(kind, settings, heartbeat_interval=1)
    async with first:
        await publish(settings, producer, first_attempt)
        await until(lambda: len(runs) == 1, 60)
        await first.stop(grace=0)
    assert first.stats.handed_back == 1
    assert await fence.current(pg, RESOURCE) == 7

    # 2. the group delivers the same task (same token) to a fresh pool; then attempt 2
    async with AgentPool(kind, settings, heartbeat_interval=1) as second:
        answers = await responses.for_tasks({first_attempt.task_id}, limit_s=60)
        await publish(settings, producer, second_attempt)
        answers |= await responses.for_tasks({second_attempt.task_id}, limit_s=30)

    assert runs == [
        (first.agent_id, first_attempt.task_id),
        (second.agent_id, first_attempt.task_id),  # the redelivery ran the handler again
        (second.agent_id, second_attempt.task_id),
    ]
    redelivered, next_attempt = answers[first_attempt.task_id], answers[second_attempt.task_id]
    assert isinstance(redelivered, TaskCompleted)
    assert redelivered.output == {"pg": False, "redis": False, "current": 7}
    assert isinstance(next_attempt, TaskCompleted)
    assert next_attempt.output == {"pg": True, "redis": True, "current": 8}
    # the sinks hold one effect per token: the redelivery changed neither
    rows = await pg.fetch(f"SELECT task_id, agent_id, token FROM {effects} ORDER BY token")
    assert [tuple(r) for r in rows] == [
        (first_attempt.task_id, first.agent_id, 7),
        (second_attempt.task_id, second.agent_id, 8),
    ]
    assert await rd.lrange(log_key, 0, -1) == [
        first_attempt.task_id.encode(),
        second_attempt.task_id.encode(),
    ]
    assert (await fence.current(pg, RESOURCE), await redis_fence.current(RESOURCE)) == (8, 8)
    await rd.delete(log_key, redis_fence.key(RESOURCE))
