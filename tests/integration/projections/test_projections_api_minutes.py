"""``/stats/minutes`` against PostgreSQL: a series per kind, every minute of the window in it.

The rollup rows are put in place by hand (the projector adds exactly these rows;
see ``test_projections_flow``), at minutes relative to now, since the window ends
at the current minute. No broker is needed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from agentlog.projections.folds.metrics import BUCKETS, percentile
from agentlog.projections.migrate import migrate
from agentlog.projections.records import minute_of
from agentlog.settings import Settings
from tests.integration.projections.test_projections_api import api_client

WINDOW = 10


def buckets(**at: int) -> list[int]:
    """A latency histogram: ``b3=2`` puts two observations in bucket 3."""
    counts = [0] * BUCKETS
    for name, n in at.items():
        counts[int(name[1:])] = n
    return counts


async def put_rollups(
    dsn: str, schema: str, rows: list[tuple[str, datetime, dict[str, Any]]]
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema)
        for kind, minute, counts in rows:
            values = {
                "completed": 0,
                "failed": 0,
                "retried": 0,
                "timed_out": 0,
                "latency_us_sum": 0,
                "latency_buckets": [0] * BUCKETS,
                "cache_hits": 0,
                "cache_misses": 0,
                "cache_hit_latency_us": 0,
                "cache_miss_latency_us": 0,
                "cache_latency_saved_us": 0,
                "cache_tokens_saved": 0,
                "cache_evictions": 0,
                "cache_degraded_windows": 0,
            } | counts
            names = ", ".join(["agent_kind", "minute", *values])
            marks = ", ".join(f"${n}" for n in range(1, len(values) + 3))
            await conn.execute(
                f"INSERT INTO {schema}.agent_metrics_minute ({names}) VALUES ({marks})",
                kind,
                minute,
                *values.values(),
            )
    finally:
        await conn.close()


async def a_fresh_minute() -> datetime:
    """The current minute, with at least 10 s of it left (the test's requests fit in it)."""
    now = datetime.now(UTC)
    if now.second >= 50:
        await asyncio.sleep(61 - now.second)
    return minute_of(datetime.now(UTC))


@pytest.mark.timeout(120)
async def test_a_series_per_kind_with_every_minute_of_the_window(
    postgres_dsn: str, schema: str
) -> None:
    settings = Settings(postgres_dsn=postgres_dsn)
    now = await a_fresh_minute()
    fast = buckets(b0=3, b1=5, b4=1)
    slow = buckets(b7=2, b14=1)
    one = buckets(b2=1)
    await put_rollups(
        postgres_dsn,
        schema,
        [
            ("alpha", now, {"completed": 9, "latency_buckets": fast, "cache_hits": 4}),
            ("alpha", now - timedelta(minutes=3), {"completed": 3, "latency_buckets": slow}),
            ("alpha", now - timedelta(minutes=3 + 1), {"failed": 2, "retried": 1}),
            ("alpha", now - timedelta(minutes=WINDOW - 1), {"timed_out": 1, "cache_misses": 6}),
            ("alpha", now - timedelta(minutes=WINDOW), {"completed": 100}),  # before the window
            ("beta", now - timedelta(minutes=1), {"completed": 1, "latency_buckets": one}),
            ("gamma", now - timedelta(minutes=45), {"completed": 5}),  # only before the window
            ("delta", now + timedelta(minutes=5), {"completed": 5}),  # a clock ahead: after it
        ],
    )
    async with api_client(settings, schema) as api:
        response = await api.get("/stats/minutes", params={"minutes": WINDOW})
        assert response.status_code == 200, response.text
        body = response.json()
        one_minute = (await api.get("/stats", params={"minutes": 1})).json()
        only_beta = (await api.get("/stats/minutes", params={"agent_kind": "beta"})).json()
        nobody = (await api.get("/stats/minutes", params={"agent_kind": "nobody"})).json()
        default = (await api.get("/stats/minutes")).json()
    assert minute_of(datetime.now(UTC)) == now, "the minute ended during the requests"

    first = now - timedelta(minutes=WINDOW - 1)
    assert body["window_minutes"] == WINDOW
    assert datetime.fromisoformat(body["first_minute"]) == first
    assert datetime.fromisoformat(body["last_minute"]) == now
    series = {s["agent_kind"]: s["minutes"] for s in body["agent_kinds"]}
    assert list(series) == ["alpha", "beta"]
    for minutes in series.values():
        assert [datetime.fromisoformat(m["minute"]) for m in minutes] == [
            first + timedelta(minutes=n) for n in range(WINDOW)
        ]
    alpha = series["alpha"]
    assert [m["completed"] for m in alpha] == [0, 0, 0, 0, 0, 0, 3, 0, 0, 9]
    assert [m["failed"] for m in alpha] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0]
    assert [m["retried"] for m in alpha] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert [m["timed_out"] for m in alpha] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert [m["cache_hits"] for m in alpha] == [0] * 9 + [4]
    assert [m["cache_misses"] for m in alpha] == [6] + [0] * 9
    for m, histogram in ((alpha[6], slow), (alpha[9], fast)):
        assert [m["latency_p50_ms"], m["latency_p95_ms"], m["latency_p99_ms"]] == [
            percentile(histogram, q) for q in (0.5, 0.95, 0.99)
        ]
    empty = [m for n, m in enumerate(alpha) if n not in (0, 5, 6, 9)]
    assert all(
        m | {"minute": None}
        == {
            "minute": None,
            "completed": 0,
            "failed": 0,
            "retried": 0,
            "timed_out": 0,
            "latency_p50_ms": None,
            "latency_p95_ms": None,
            "latency_p99_ms": None,
            "cache_hits": 0,
            "cache_misses": 0,
        }
        for m in empty
    )
    assert [m["completed"] for m in series["beta"]] == [0] * 8 + [1, 0]

    # the newest minute is /stats?minutes=1 of the kind (delta, ahead of the clock, aside)
    (stats_alpha,) = [k for k in one_minute["agent_kinds"] if k["agent_kind"] == "alpha"]
    assert {k: v for k, v in alpha[-1].items() if k != "minute"} == {
        k: v for k, v in stats_alpha.items() if k in alpha[-1]
    }

    assert [s["agent_kind"] for s in only_beta["agent_kinds"]] == ["beta"]
    assert len(only_beta["agent_kinds"][0]["minutes"]) == 60
    assert nobody["agent_kinds"] == []
    assert default["window_minutes"] == 60
    assert {s["agent_kind"]: len(s["minutes"]) for s in default["agent_kinds"]} == {
        "alpha": 60,
        "beta": 60,
        "gamma": 60,
    }


async def test_bad_parameters_get_a_422_naming_the_field(postgres_dsn: str, schema: str) -> None:
    await put_rollups(postgres_dsn, schema, [])
    async with api_client(Settings(postgres_dsn=postgres_dsn), schema) as api:
        assert (await api.get("/stats/minutes", params={"minutes": 1440})).status_code == 200
        for params, field in (
            ({"minutes": 0}, "minutes"),
            ({"minutes": "abc"}, "minutes"),
            ({"minutes": 1441}, "minutes"),
            ({"agent_kind": ""}, "agent_kind"),
        ):
            response = await api.get("/stats/minutes", params=params)
            assert response.status_code == 422, (params, response.text)
            assert response.json()["detail"][0]["loc"] == ["query", field]


async def test_a_token_guards_it(postgres_dsn: str, schema: str) -> None:
    await put_rollups(postgres_dsn, schema, [])
    async with api_client(Settings(postgres_dsn=postgres_dsn), schema, token="s3cret") as api:
        response = await api.get("/stats/minutes")
        assert response.status_code == 401
        assert "AGENTLOG_API_TOKEN" in response.json()["detail"]
        ok = await api.get("/stats/minutes", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["agent_kinds"] == []
