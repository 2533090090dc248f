"""A lock holder that writes to fenced sinks, for the pause test (run as a process).

``python -m tests.integration.locks.locks_holder --kafka H:P --topic-prefix P --resource R
--postgres DSN --table T --redis URL --key K``: takes the lock (ttl 2 s), writes
``zombie-1`` to both sinks with its token, prints ``WROTE1 <token>``, sleeps 3 s
(the test stops the process here, past its lease), then writes ``zombie-2``
without checking the lease, prints ``WROTE2 <token> pg=<applied> redis=<applied>``,
and ``LOST <reason>`` when the lock SDK reports the lease lost.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
import redis.asyncio as aioredis

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.errors import LockLostError
from agentlog.agents.locks.fencing import PostgresFence, RedisFence
from agentlog.settings import Settings


async def write(
    conn: asyncpg.Connection,
    fences: tuple[PostgresFence, RedisFence],
    args: argparse.Namespace,
    token: int,
    value: str,
) -> tuple[bool, bool]:
    """Write ``value`` with ``token`` to the PostgreSQL row and the Redis key."""
    pg, rd = fences
    sql = (
        f"INSERT INTO {args.table} (resource, value, token) VALUES ($1, $2, $3) "
        "ON CONFLICT (resource) DO UPDATE SET value = EXCLUDED.value, token = EXCLUDED.token"
    )
    applied_pg = await pg.apply(
        conn, args.resource, token, lambda c: c.execute(sql, args.resource, value, token)
    )
    applied_redis = await rd.set(args.resource, token, args.key, value)
    return applied_pg.applied, applied_redis.applied


async def main(args: argparse.Namespace) -> None:
    settings = Settings(
        kafka_bootstrap=args.kafka, topic_prefix=args.topic_prefix, partitions=3, source="holder"
    )
    conn = await asyncpg.connect(args.postgres)
    client_redis = aioredis.from_url(args.redis)
    fences = (PostgresFence(args.fence_table), RedisFence(client_redis, prefix=args.fence_prefix))
    try:
        async with LockClient(settings, requester="zombie") as locks:
            try:
                async with locks.lock(args.resource, ttl=2.0, wait=10) as lease:
                    await write(conn, fences, args, lease.token, "zombie-1")
                    print(f"WROTE1 {lease.token}", flush=True)
                    await asyncio.sleep(3.0)  # SIGSTOP lands here
                    pg, rd = await write(conn, fences, args, lease.token, "zombie-2")
                    print(f"WROTE2 {lease.token} pg={pg} redis={rd}", flush=True)
            except LockLostError as e:
                print(f"LOST {e.reason}", flush=True)
    finally:
        await conn.close()
        await client_redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("kafka", "topic-prefix", "resource", "postgres", "table", "fence-table"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("redis", "key", "fence-prefix"):
        parser.add_argument(f"--{name}", required=True)
    asyncio.run(main(parser.parse_args()))
