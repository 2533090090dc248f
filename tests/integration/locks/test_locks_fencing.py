"""Fenced sinks on real PostgreSQL and Redis, and a holder paused past its lease."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

import asyncpg
import pytest
import redis.asyncio as aioredis

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.errors import FenceError
from agentlog.agents.locks.fencing import PostgresFence, RedisFence, fenced_script
from agentlog.agents.locks.runner import LockManager
from agentlog.settings import Settings
from tests.integration.locks.locks_harness import ROOT, LocksTail


def table_name(unique_name: str, what: str) -> str:
    # keep the random suffix: test names are long and the parametrizations share one database
    head, _, suffix = unique_name.rpartition("-")
    return f"{what}_{suffix}_{head.replace('-', '_')}"[:60]


async def make_tables(pool: asyncpg.Pool, unique_name: str) -> tuple[PostgresFence, str]:
    fence = PostgresFence(table_name(unique_name, "fence"))
    await fence.create_table(pool)
    data = table_name(unique_name, "data")
    await pool.execute(
        f"CREATE TABLE {data} (resource text PRIMARY KEY, value text NOT NULL, token bigint)"
    )
    return fence, data


def upsert(data: str) -> str:
    return (
        f"INSERT INTO {data} (resource, value, token) VALUES ($1, $2, $3) "
        "ON CONFLICT (resource) DO UPDATE SET value = EXCLUDED.value, token = EXCLUDED.token"
    )


async def test_postgres_fence_applies_current_tokens_and_refuses_older_ones(
    pg: asyncpg.Pool, unique_name: str
) -> None:
    fence, data = await make_tables(pg, unique_name)
    sql = upsert(data)

    async def put(token: int, value: str) -> bool:
        result = await fence.apply(pg, "r", token, lambda c: c.execute(sql, "r", value, token))
        return result.applied

    assert await put(1, "one")
    assert await put(3, "three")
    assert not await put(2, "two, late")
    assert await put(3, "three again")  # the same lease writes twice
    result = await fence.apply(pg, "r", 1, lambda c: c.execute(sql, "r", "x", 1))
    assert (result.applied, result.current, bool(result)) == (False, 3, False)
    assert await pg.fetchval(f"SELECT value FROM {data} WHERE resource = 'r'") == "three again"
    assert await fence.current(pg, "r") == 3
    assert await fence.current(pg, "never") is None
    strict = PostgresFence(fence.table.strip('"'), strict=True)
    assert not (await strict.apply(pg, "r", 3)).applied


async def test_postgres_fence_rolls_back_the_claim_when_the_write_fails(
    pg: asyncpg.Pool, unique_name: str
) -> None:
    fence, _ = await make_tables(pg, unique_name)
    await fence.apply(pg, "r", 1)

    async def broken(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT no_such_column FROM pg_class")

    with pytest.raises(asyncpg.PostgresError):
        await fence.apply(pg, "r", 5, broken)
    assert await fence.current(pg, "r") == 1  # token 5 was not recorded
    with pytest.raises(FenceError, match="create_table"):
        await PostgresFence("no_such_fence_table").apply(pg, "r", 1)


async def test_postgres_fence_under_concurrent_writers_keeps_the_newest(
    pg: asyncpg.Pool, unique_name: str
) -> None:
    fence, data = await make_tables(pg, unique_name)
    sql = upsert(data)
    tokens = list(range(1, 21))
    random.shuffle(tokens)

    async def put(token: int) -> tuple[int, bool]:
        result = await fence.apply(
            pg, "r", token, lambda c: c.execute(sql, "r", f"v{token}", token)
        )
        return token, result.applied

    outcomes = await asyncio.gather(*(put(t) for t in tokens))
    assert await pg.fetchval(f"SELECT token FROM {data} WHERE resource = 'r'") == 20
    assert dict(outcomes)[20], "the newest token is never refused"
    assert await fence.current(pg, "r") == 20


async def test_redis_fence_applies_current_tokens_and_refuses_older_ones(
    rd: aioredis.Redis, unique_name: str
) -> None:
    fence = RedisFence(rd, prefix=f"{unique_name}:fence:")
    key = f"{unique_name}:value"
    assert (await fence.set("r", 2, key, "two")).applied
    late = await fence.set("r", 1, key, "one, late")
    assert (late.applied, late.current) == (False, 2)
    assert await rd.get(key) == b"two"
    assert (await fence.hset("r", 2, f"{unique_name}:h", {"a": 1, "b": "x"})).applied
    assert await rd.hgetall(f"{unique_name}:h") == {b"a": b"1", b"b": b"x"}
    incr = fenced_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    counted = await fence.run(incr, "r", 3, [f"{unique_name}:n"], [5])
    assert (counted.applied, counted.value) == (True, 5)
    assert not (await fence.run(incr, "r", 2, [f"{unique_name}:n"], [5])).applied
    assert await rd.get(f"{unique_name}:n") == b"5"
    assert (await fence.delete("r", 3, key)).applied
    assert await rd.get(key) is None
    assert await fence.current("r") == 3
    assert await fence.current("other") is None


async def test_a_strict_redis_fence_lets_each_token_write_once(
    rd: aioredis.Redis, unique_name: str
) -> None:
    fence = RedisFence(rd, prefix=f"{unique_name}:fence:", strict=True)
    key = f"{unique_name}:value"
    assert (await fence.set("r", 1, key, "first")).applied
    again = await fence.set("r", 1, key, "redelivered")
    assert (again.applied, again.current) == (False, 1)
    assert not (await fence.hset("r", 1, f"{unique_name}:h", {"a": 1})).applied
    assert not (await fence.delete("r", 1, key)).applied
    assert await rd.get(key) == b"first"
    assert (await fence.set("r", 2, key, "next lease")).applied
    loose = RedisFence(rd, prefix=f"{unique_name}:fence:")  # the default allows it
    assert (await loose.set("r", 2, key, "same lease again")).applied


@pytest.mark.timeout(120)
async def test_a_holder_paused_past_its_lease_is_fenced_off_and_the_next_holders_write_stands(
    *,
    settings: Settings,
    manager: LockManager,
    locks: LockClient,
    tail: LocksTail,
    pg: asyncpg.Pool,
    rd: aioredis.Redis,
    postgres_dsn: str,
    redis_url: str,
    unique_name: str,
) -> None:
    resource = f"repo:{unique_name}"
    fence, data = await make_tables(pg, unique_name)
    redis_fence = RedisFence(rd, prefix=f"{unique_name}:fence:")
    key = f"{unique_name}:{{{resource}}}:deployed"
    assert settings.kafka_bootstrap is not None
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.locks.locks_holder",
        *("--kafka", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix),
        *("--resource", resource, "--postgres", postgres_dsn, "--table", data),
        *("--fence-table", fence.table.strip('"'), "--redis", redis_url, "--key", key),
        *("--fence-prefix", redis_fence.prefix),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "AGENTLOG_LOG_LEVEL": "WARNING"},
    )
    assert holder.stdout is not None
    try:
        line = (await asyncio.wait_for(holder.stdout.readline(), 60)).decode()
        assert line.startswith("WROTE1 1"), line
        holder.send_signal(signal.SIGSTOP)  # a GC pause, a VM migration, …
        # the manager expires the paused holder's lease and hands the lock over
        async with locks.lock(resource, ttl=10, wait=20) as lease:
            assert lease.token == 2
            sql = upsert(data)
            written = await fence.apply(
                pg, resource, 2, lambda c: c.execute(sql, resource, "holder-2", 2)
            )
            assert written.applied
            assert (await redis_fence.set(resource, 2, key, "holder-2")).applied
            holder.send_signal(signal.SIGCONT)  # the zombie wakes up and writes
            rest = (await asyncio.wait_for(holder.stdout.read(), 30)).decode()
            assert "WROTE2 1 pg=False redis=False" in rest, rest
            assert "LOST" in rest, rest
            # the next holder's write stands in both sinks
            row = await pg.fetchrow(
                f"SELECT value, token FROM {data} WHERE resource = $1", resource
            )
            assert (row["value"], row["token"]) == ("holder-2", 2)
            assert await rd.get(key) == b"holder-2"
            assert await fence.current(pg, resource) == 2
            assert await redis_fence.current(resource) == 2
        assert await asyncio.wait_for(holder.wait(), 30) == 0
    finally:
        if holder.returncode is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
            await holder.wait()
    await tail.until(lambda t: len(t.decisions(resource)) >= 5, 20)  # through the release
    expired = [e for e in tail.decisions(resource) if type(e).__name__ == "LockExpired"]
    assert [e.fencing_token for e in expired] == [1]
