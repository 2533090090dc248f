"""PostgreSQL restarts while the projector runs: it waits, reconnects and loses nothing."""

from __future__ import annotations

import asyncio

import pytest

from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.settings import Settings
from agentlog.streams.embedded import PostgresLauncher
from tests.integration.projections.support import produce, scenario
from tests.integration.projections.test_projections_flow import assert_matches_topics


@pytest.mark.timeout(180)
async def test_projector_survives_a_postgres_restart(
    settings: Settings, schema: str, own_postgres: PostgresLauncher
) -> None:
    s = settings.with_overrides(postgres_dsn=own_postgres.dsn)
    items = scenario(s.topic_prefix, 80)
    producing = asyncio.create_task(produce(s, items, chunk=20, pause=0.05))
    config = ProjectorConfig(schema=schema, batch_size=50, lag_refresh_s=0.5)
    async with Projector(s, config) as projector:
        await asyncio.sleep(0.5)
        await own_postgres.stop()
        await asyncio.sleep(2.0)  # batches fail and wait meanwhile
        await own_postgres.start()
        await producing
        await projector.wait_caught_up(90)
        await projector.wait_caught_up(30)
        assert projector.stats.retries > 0
        async with projector.pool.acquire() as conn:
            await assert_matches_topics(conn, s)
