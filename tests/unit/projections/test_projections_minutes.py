"""``/stats/minutes`` without PostgreSQL: the series from rollup rows, its schema, its 422s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agentlog.projections.api import create_app, queries
from agentlog.projections.config import ProjectionSettings
from agentlog.projections.folds.metrics import BUCKETS, percentile
from agentlog.settings import Settings

#: Nothing listens there: validation answers before any connection is tried.
DSN = "postgresql://nobody@127.0.0.1:9/nothing"
FIRST = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)


def row(kind: str, minutes_in: int, **counts: Any) -> dict[str, Any]:
    """A rollup row as ``queries.minute_rows`` returns it."""
    return {
        "agent_kind": kind,
        "minute": FIRST + timedelta(minutes=minutes_in),
        "completed": 0,
        "failed": 0,
        "retried": 0,
        "timed_out": 0,
        "latency_buckets": [0] * BUCKETS,
        "cache_hits": 0,
        "cache_misses": 0,
    } | counts


def test_every_minute_of_the_window_is_in_each_series_oldest_first() -> None:
    buckets = [0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    rows = [
        row("alpha", 1, completed=7, failed=1, latency_buckets=buckets, cache_hits=3),
        row("alpha", 4, retried=2, timed_out=1, cache_misses=5),
        row("beta", 0, completed=1, latency_buckets=[1] + [0] * (BUCKETS - 1)),
    ]
    series = queries.minute_series(rows, FIRST, 5)
    assert [s["agent_kind"] for s in series] == ["alpha", "beta"]
    alpha = series[0]["minutes"]
    assert [m["minute"] for m in alpha] == [FIRST + timedelta(minutes=n) for n in range(5)]
    assert [m["completed"] for m in alpha] == [0, 7, 0, 0, 0]
    assert [m["failed"] for m in alpha] == [0, 1, 0, 0, 0]
    assert [m["retried"] for m in alpha] == [0, 0, 0, 0, 2]
    assert [m["timed_out"] for m in alpha] == [0, 0, 0, 0, 1]
    assert [m["cache_hits"] for m in alpha] == [0, 3, 0, 0, 0]
    assert [m["cache_misses"] for m in alpha] == [0, 0, 0, 0, 5]
    assert alpha[1]["latency_p50_ms"] == percentile(buckets, 0.5)
    assert alpha[1]["latency_p99_ms"] == percentile(buckets, 0.99)
    assert [m["latency_p95_ms"] for m in alpha if m["minute"] != alpha[1]["minute"]] == [None] * 4
    assert len(series[1]["minutes"]) == 5
    assert queries.minute_series([], FIRST, 5) == []


def test_a_minute_has_the_counts_and_percentiles_of_the_kind_stats_over_it() -> None:
    one = row("alpha", 0, completed=9, failed=2, latency_buckets=list(range(BUCKETS)), cache_hits=1)
    totals = one | {"cache_latency_saved_us": 0, "cache_tokens_saved": 0}
    (stats,) = queries.kind_stats([totals])
    ((minute,),) = (s["minutes"] for s in queries.minute_series([one], FIRST, 1))
    assert {k: v for k, v in minute.items() if k != "minute"} == {
        k: v for k, v in stats.items() if k in minute
    }


def client() -> httpx.AsyncClient:
    app = create_app(Settings(postgres_dsn=DSN), ProjectionSettings(schema="s"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": 1441}, "minutes"),
        ({"minutes": "abc"}, "minutes"),
        ({"agent_kind": ""}, "agent_kind"),
        ({"agent_kind": "k" * 65}, "agent_kind"),
    ],
)
async def test_bad_parameters_get_a_422_naming_the_field(
    params: dict[str, Any], field: str
) -> None:
    async with client() as api:
        response = await api.get("/stats/minutes", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


async def test_the_openapi_schema_describes_the_route() -> None:
    async with client() as api:
        spec = (await api.get("/openapi.json")).json()
    operation = spec["paths"]["/stats/minutes"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["minutes"]["schema"]["minimum"] == 1
    assert params["minutes"]["schema"]["maximum"] == 1440
    assert "1440" in params["minutes"]["description"]
    assert set(operation["responses"]) >= {"200", "422", "503"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/MinuteSeries"}
    minute = spec["components"]["schemas"]["MinuteStats"]
    assert {"minute", "completed", "failed", "latency_p95_ms", "cache_misses"} <= set(
        minute["properties"]
    )
    assert all(p.get("description") for p in minute["properties"].values())
