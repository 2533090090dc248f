"""While PostgreSQL is down the API answers 503 with a clear body, and recovers by itself."""

from __future__ import annotations

import pytest

from agentlog.settings import Settings
from agentlog.streams.embedded import PostgresLauncher
from tests.integration.projections.test_projections_api import api_client, projected


@pytest.mark.timeout(180)
async def test_503_while_postgres_is_stopped(
    settings: Settings, schema: str, own_postgres: PostgresLauncher
) -> None:
    s = settings.with_overrides(postgres_dsn=own_postgres.dsn)
    await projected(s, schema, workflows=3)
    async with api_client(s, schema) as api:
        assert (await api.get("/workflows")).status_code == 200
        await own_postgres.stop()
        for path in (
            "/workflows",
            "/stats",
            "/stats/minutes",
            "/metrics",
            "/health",
            "/workflows/x/timeline",
        ):
            response = await api.get(path)
            assert response.status_code == 503, (path, response.text)
            assert "PostgreSQL is unavailable" in response.json()["detail"]
            assert response.headers["retry-after"] == "1"
        await own_postgres.start()
        response = await api.get("/workflows")
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 3


async def test_503_names_a_schema_without_read_models(settings: Settings, schema: str) -> None:
    async with api_client(settings, schema) as api:
        response = await api.get("/workflows")
    assert response.status_code == 503
    assert "agentlog projector run" in response.json()["detail"]
