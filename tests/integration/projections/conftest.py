"""Fixtures of the projection tests: topics of their own and a PostgreSQL schema of their own."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from agentlog.settings import Settings
from agentlog.streams.embedded import PostgresLauncher
from agentlog.streams.embedded.process import pick_free_port
from tests.integration.projections.support import create_topics, fresh_settings


@pytest.fixture
async def settings(kafka_bootstrap: str, postgres_dsn: str) -> Settings:
    """Settings with a topic prefix of its own; the catalogue and demo task topics created."""
    s = fresh_settings(kafka_bootstrap, postgres_dsn)
    await create_topics(s)
    return s


@pytest.fixture
async def schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A PostgreSQL schema name no other test uses; it and its shadows are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for row in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{name}%"
        ):
            await conn.execute(f"DROP SCHEMA IF EXISTS {row['nspname']} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[PostgresLauncher]:
    """A PostgreSQL of this test's own, on a fixed port, that keeps its data across restarts.

    The test may ``stop()`` and ``start()`` it; the DSN stays the same.
    """
    server = PostgresLauncher(
        tmp_path, port=pick_free_port(), fresh=False, start_timeout=60.0, stop_grace=5.0
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        # fresh=False keeps the cluster; this one is ours alone, so remove it
        home = server.cluster.parent
        shutil.rmtree(home if home.parent.name == "agentlog-postgres" else server.cluster, True)
