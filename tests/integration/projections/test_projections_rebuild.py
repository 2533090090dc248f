"""A rebuild from offset zero into a shadow schema equals the live projection, and swaps in live."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from agentlog.projections.config import DEFAULT_SCHEMA
from agentlog.projections.errors import ProjectionError
from agentlog.projections.rebuild import rebuild, table_hashes
from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.projections.tables import ALL_TABLES
from agentlog.settings import Settings
from tests.integration.projections.support import produce, scenario
from tests.integration.projections.test_projections_flow import assert_matches_topics


@pytest.mark.timeout(180)
async def test_rebuild_equals_live_and_swaps_without_downtime(
    settings: Settings, schema: str
) -> None:
    await produce(settings, scenario(settings.topic_prefix, 60), duplicates=0.03, poison_every=151)
    more = scenario(f"{settings.topic_prefix}-late", 40)
    config = ProjectorConfig(schema=schema, batch_size=200)
    async with Projector(settings, config) as projector:
        await projector.wait_caught_up(60)
        await projector.wait_caught_up(30)

        # events keep flowing while the rebuild runs
        producing = asyncio.create_task(produce(settings, more, chunk=20, pause=0.05))
        report = await rebuild(settings, "all", schema=schema, swap=False)
        assert report.equal, report.differing
        assert set(report.live) == set(ALL_TABLES)
        assert report.live["workflows"].rows >= 60
        assert report.records > 0
        await producing

        # a live table gone wrong is detected and replaced while readers keep reading
        async with projector.pool.acquire() as conn:
            await conn.execute("UPDATE workflows SET status = 'bogus' WHERE status = 'cancelled'")
        stop = asyncio.Event()
        seen: list[int] = []

        async def reader() -> None:
            async with projector.pool.acquire() as conn:
                while not stop.is_set():
                    seen.append(await conn.fetchval("SELECT count(*) FROM workflows"))
                    await asyncio.sleep(0.005)

        reading = asyncio.create_task(reader())
        fixed = await rebuild(settings, "workflows", schema=schema)
        stop.set()
        await reading
        assert fixed.differing == ["workflows"]
        assert fixed.swapped == ["workflows"]
        assert seen
        assert seen == sorted(seen)  # never an empty or missing table

        await projector.wait_caught_up(30)
        async with projector.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM workflows WHERE status = 'bogus'") == 0
            await assert_matches_topics(conn, settings)
            assert (await table_hashes(conn, schema, ["workflows"]))["workflows"].rows == 100


async def test_rebuild_names_what_is_wrong(
    settings: Settings, schema: str, postgres_dsn: str
) -> None:
    with pytest.raises(ProjectionError, match="unknown projection 'nope'"):
        await rebuild(settings, "nope", schema=schema)
    with pytest.raises(ProjectionError, match="holds no projection"):
        await rebuild(settings, "all", schema=schema)
    with pytest.raises(ProjectionError, match="must differ"):
        await rebuild(settings, "all", schema=DEFAULT_SCHEMA, shadow=DEFAULT_SCHEMA)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"{schema}_shadow"
        )
    finally:
        await conn.close()
