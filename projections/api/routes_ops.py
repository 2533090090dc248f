"""Operations: ``/stats`` and ``/stats/minutes`` (JSON), ``/metrics`` (Prometheus), ``/health``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from agentlog.projections.api import prometheus, queries
from agentlog.projections.api.models import MinuteSeries, Problem, Stats
from agentlog.projections.api.params import KIND_MAX_LENGTH
from agentlog.projections.api.routes_workflows import state_of
from agentlog.projections.records import minute_of

router = APIRouter(tags=["operations"])
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "PostgreSQL is unavailable"}
}

_LOCK_TOTALS = """
SELECT sum(requested)::bigint AS requested, sum(granted)::bigint AS granted,
       sum(queued)::bigint AS queued, sum(denied)::bigint AS denied,
       sum(released)::bigint AS released, sum(expired)::bigint AS expired,
       sum(wait_us_sum)::bigint AS wait_us_sum,
       (SELECT array_agg(s ORDER BY i) FROM (
            SELECT i, sum(b)::bigint AS s
            FROM lock_metrics_minute m, unnest(m.wait_buckets) WITH ORDINALITY AS u(b, i)
            GROUP BY i) AS x) AS wait_buckets
FROM lock_metrics_minute
"""


@router.get("/health", responses=_UNAVAILABLE, summary="PostgreSQL answers")
async def health(request: Request) -> dict[str, str]:
    """200 when the read models can be queried; 503 otherwise."""
    async with state_of(request).db.connection() as conn:
        await conn.fetchval("SELECT count(*) FROM projector_offsets")
    return {"status": "ok"}


@router.get("/stats", response_model=Stats, responses=_UNAVAILABLE, summary="Summary")
async def stats(
    request: Request,
    minutes: Annotated[int, Query(ge=1, le=525_600, description="window of the kind stats")] = 60,
) -> dict[str, Any]:
    """Workflows by status, archive and dead-letter sizes, agents, locks, per-kind rollups
    over the last ``minutes``, and the projector's lag per partition."""
    api = state_of(request)
    now = datetime.now(UTC)
    async with api.db.connection() as conn:
        by_status = await conn.fetch("SELECT status, count(*) AS n FROM workflows GROUP BY status")
        events = await conn.fetchval("SELECT coalesce(sum(events), 0)::bigint FROM event_counts")
        dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
        agents = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE deregistered_at IS NULL AND"
            " last_seen_at >= $1) AS alive FROM agents",
            queries.alive_since(now, api.alive_after_s),
        )
        locks = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'held') AS held,"
            " coalesce(sum(jsonb_array_length(queue)), 0)::bigint AS waiters FROM locks"
        )
        kinds = await conn.fetch(queries.KIND_TOTALS, now - timedelta(minutes=minutes))
        lag = await conn.fetch(queries.LAG)
    return {
        "workflows": {r["status"]: r["n"] for r in by_status},
        "events": events,
        "dead_letters": dead,
        "agents_alive": agents["alive"],
        "agents_total": agents["total"],
        "locks_held": locks["held"],
        "lock_waiters": locks["waiters"],
        "window_minutes": minutes,
        "agent_kinds": queries.kind_stats(kinds),
        "projector": [
            {
                "topic": r["topic"],
                "partition": r["kafka_partition"],
                "next_offset": r["next_offset"],
                "end_offset": r["end_offset"],
                "lag": r["lag"],
                "updated_at": r["updated_at"],
            }
            for r in lag
        ],
    }


@router.get(
    "/stats/minutes",
    response_model=MinuteSeries,
    responses=_UNAVAILABLE,
    summary="Per-minute rollups",
)
async def stats_minutes(
    request: Request,
    minutes: Annotated[
        int,
        Query(
            ge=1,
            le=1440,
            description="minutes in the series, the current one included: 1 to 1440 (a day)",
        ),
    ] = 60,
    agent_kind: Annotated[
        str | None,
        Query(min_length=1, max_length=KIND_MAX_LENGTH, description="only this agent kind"),
    ] = None,
) -> dict[str, Any]:
    """Per agent kind, one entry per minute of the last ``minutes``, oldest first: steps
    completed, failed, retried and timed out, latency p50/p95/p99 and cache lookups.

    Minutes without rollups are zeros, so every series has ``minutes`` entries; the
    newest is the current minute (still filling), as in ``/stats?minutes=``. Kinds
    without a rollup in the window are left out.
    """
    last = minute_of(datetime.now(UTC))
    first = last - timedelta(minutes=minutes - 1)
    async with state_of(request).db.connection() as conn:
        rows = await queries.minute_rows(conn, first, last, agent_kind)
    return {
        "window_minutes": minutes,
        "first_minute": first,
        "last_minute": last,
        "agent_kinds": queries.minute_series(rows, first, minutes),
    }


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **_UNAVAILABLE,
    },
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> PlainTextResponse:
    """Engine counters and histograms from the rollups, and the projector's lag."""
    api = state_of(request)
    now = datetime.now(UTC)
    async with api.db.connection() as conn:
        data = {
            "workflows": {
                r["status"]: r["n"]
                for r in await conn.fetch("SELECT status, count(*) AS n FROM workflows GROUP BY 1")
            },
            "kinds": await conn.fetch(queries.KIND_TOTALS, datetime(1970, 1, 1, tzinfo=UTC)),
            "locks": await conn.fetchrow(_LOCK_TOTALS),
            "events": await conn.fetch(
                "SELECT topic, type, events FROM event_counts ORDER BY 1, 2"
            ),
            "dead_letters": await conn.fetch(
                "SELECT error_reason, count(*) AS n FROM dead_letters GROUP BY 1 ORDER BY 1"
            ),
            "agents": {
                r["state"]: r["n"]
                for r in await conn.fetch(
                    "SELECT CASE WHEN deregistered_at IS NULL AND last_seen_at >= $1"
                    " THEN 'alive' ELSE 'gone' END AS state, count(*) AS n FROM agents GROUP BY 1",
                    queries.alive_since(now, api.alive_after_s),
                )
            },
            "lag": await conn.fetch(queries.LAG),
        }
    return PlainTextResponse(prometheus.render(data, now), media_type=prometheus.CONTENT_TYPE)
