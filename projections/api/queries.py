"""SQL of the query API, and the conversions of rows to response bodies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from agentlog.projections.folds.metrics import BUCKETS, percentile
from agentlog.projections.folds.workflows import JOURNAL_TYPE_NAMES

JOURNAL_TYPES = sorted(JOURNAL_TYPE_NAMES)
TERMINAL_TYPES = frozenset(
    {"WorkflowSucceeded", "WorkflowFailed", "WorkflowCancelled", "WorkflowRejected"}
)

WORKFLOW_COLUMNS = (
    "workflow_id, status, definition, version, priority, labels::text AS labels, "
    "idempotency_key, created_at, started_at, ended_at, error_kind, error_message, "
    "failed_step, journal_length, last_event_id, last_event_at"
)
EVENT_COLUMNS = (
    "event_id, type, topic, kafka_partition, kafka_offset, key, occurred_at, "
    "payload::text AS payload"
)


def workflow_summary(row: Any) -> dict[str, Any]:
    """A ``workflows`` row as a WorkflowSummary body."""
    out = dict(row)
    out["labels"] = json.loads(out["labels"])
    kind, message = out.pop("error_kind"), out.pop("error_message")
    out["error"] = None if kind is None else {"error_kind": kind, "message": message or ""}
    return out


def event_out(row: Any) -> dict[str, Any]:
    """An ``events`` row as an EventOut body."""
    return {
        "event_id": row["event_id"],
        "type": row["type"],
        "topic": row["topic"],
        "partition": row["kafka_partition"],
        "offset": row["kafka_offset"],
        "key": row["key"],
        "occurred_at": row["occurred_at"],
        "payload": json.loads(row["payload"]),
    }


async def list_workflows(
    conn: Any,
    *,
    status: str | None,
    definition: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Workflows newest first, filtered; only the filters given enter the SQL (index use)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if status is not None:
        where.append(f"status = {arg(status)}")
    if definition is not None:
        where.append(f"definition = {arg(definition)}")
    if created_after is not None:
        where.append(f"created_at >= {arg(created_after)}")
    if created_before is not None:
        where.append(f"created_at < {arg(created_before)}")
    if after is not None:
        where.append(f"(created_at, workflow_id) < ({arg(after[0])}, {arg(after[1])})")
    sql = f"SELECT {WORKFLOW_COLUMNS} FROM workflows"  # noqa: S608 - fixed columns
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at DESC, workflow_id DESC LIMIT {arg(limit)}"
    return list(await conn.fetch(sql, *args))


async def journal(conn: Any, workflow_id: str) -> list[Any]:
    """A workflow's archived journal events, in journal order."""
    return list(
        await conn.fetch(
            "SELECT event_id, occurred_at, payload::text AS payload FROM events"
            " WHERE key = $1 AND type = ANY($2::text[]) ORDER BY kafka_partition, kafka_offset",
            workflow_id,
            JOURNAL_TYPES,
        )
    )


async def find_event(conn: Any, workflow_id: str, event_id: str) -> Any:
    """One event of the workflow's history by id, or None."""
    return await conn.fetchrow(
        "SELECT event_id, type, occurred_at FROM events WHERE event_id = $1 AND key = $2",
        event_id,
        workflow_id,
    )


async def history(
    conn: Any,
    key: str,
    *,
    types: Sequence[str] | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Archived events of a key (a workflow, resource or agent), oldest first."""
    args: list[Any] = [key]
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE key = $1"  # noqa: S608 - fixed columns
    if types:
        args.append(list(types))
        sql += f" AND type = ANY(${len(args)}::text[])"
    if after is not None:
        args += [after[0], after[1]]
        sql += f" AND (occurred_at, event_id) > (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    sql += f" ORDER BY occurred_at, event_id LIMIT ${len(args)}"
    return list(await conn.fetch(sql, *args))


async def timeline(conn: Any, workflow_id: str) -> list[dict[str, Any]]:
    """The steps rows of a workflow, in the order they started."""
    rows = await conn.fetch(
        "SELECT *, output::text AS output_text FROM steps WHERE workflow_id = $1"
        " ORDER BY first_event_at, task_id",
        workflow_id,
    )
    out = []
    for row in rows:
        item = dict(row)
        text = item.pop("output_text")
        item["output"] = json.loads(text) if text is not None else None
        out.append(item)
    return out


async def workflow_exists(conn: Any, workflow_id: str) -> bool:
    """True when the workflow has a row or any archived event."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM workflows WHERE workflow_id = $1)"
        " OR EXISTS (SELECT 1 FROM events WHERE key = $1)",
        workflow_id,
    )
    return bool(found)


def latency_percentiles(buckets: Sequence[int] | None) -> dict[str, float | None]:
    """p50, p95 and p99 in milliseconds of a ``latency_buckets`` histogram (None if empty)."""
    counts = list(buckets or [0] * BUCKETS)
    return {
        "latency_p50_ms": percentile(counts, 0.50),
        "latency_p95_ms": percentile(counts, 0.95),
        "latency_p99_ms": percentile(counts, 0.99),
    }


def step_counts(row: Any) -> dict[str, Any]:
    """Step outcomes, latency percentiles and cache lookups of an ``agent_metrics_minute``
    row, or of a sum of rows."""
    return {
        "completed": row["completed"],
        "failed": row["failed"],
        "retried": row["retried"],
        "timed_out": row["timed_out"],
        **latency_percentiles(row["latency_buckets"]),
        "cache_hits": row["cache_hits"],
        "cache_misses": row["cache_misses"],
    }


def kind_stats(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Per-kind summaries from ``agent_metrics_minute`` rows summed over a window."""
    out = []
    for r in rows:
        lookups = r["cache_hits"] + r["cache_misses"]
        out.append(
            {
                "agent_kind": r["agent_kind"],
                **step_counts(r),
                "cache_hit_rate": r["cache_hits"] / lookups if lookups else None,
                "cache_latency_saved_ms": r["cache_latency_saved_us"] / 1000,
                "cache_tokens_saved": r["cache_tokens_saved"],
            }
        )
    return out


#: A minute without a rollup row: nothing happened.
_IDLE_MINUTE = {
    "completed": 0,
    "failed": 0,
    "retried": 0,
    "timed_out": 0,
    "latency_buckets": None,
    "cache_hits": 0,
    "cache_misses": 0,
}


async def minute_rows(
    conn: Any, first: datetime, last: datetime, agent_kind: str | None
) -> list[Any]:
    """The ``agent_metrics_minute`` rows of minutes ``first`` to ``last`` (both included)."""
    sql = (
        "SELECT agent_kind, minute, completed, failed, retried, timed_out, latency_buckets,"
        " cache_hits, cache_misses FROM agent_metrics_minute WHERE minute >= $1 AND minute <= $2"
    )
    args: list[Any] = [first, last]
    if agent_kind is not None:
        args.append(agent_kind)
        sql += " AND agent_kind = $3"
    return list(await conn.fetch(sql + " ORDER BY agent_kind, minute", *args))


def minute_series(rows: Sequence[Any], first: datetime, minutes: int) -> list[dict[str, Any]]:
    """Per kind with rows (in the rows' order), one entry per minute from ``first`` on.

    Minutes without a row are zeros (and no percentiles), so the series of every
    kind has exactly ``minutes`` entries.
    """
    by_kind: dict[str, dict[datetime, Any]] = {}
    for r in rows:
        by_kind.setdefault(r["agent_kind"], {})[r["minute"]] = r
    out = []
    for kind, found in by_kind.items():
        series = []
        for n in range(minutes):
            minute = first + timedelta(minutes=n)
            series.append({"minute": minute, **step_counts(found.get(minute, _IDLE_MINUTE))})
        out.append({"agent_kind": kind, "minutes": series})
    return out


#: The per-kind sums over minutes (buckets summed element-wise).
KIND_TOTALS = """
SELECT agent_kind,
       sum(completed)::bigint AS completed, sum(failed)::bigint AS failed,
       sum(retried)::bigint AS retried, sum(timed_out)::bigint AS timed_out,
       sum(latency_us_sum)::bigint AS latency_us_sum,
       (SELECT array_agg(s ORDER BY i) FROM (
            SELECT i, sum(b)::bigint AS s
            FROM agent_metrics_minute m2, unnest(m2.latency_buckets) WITH ORDINALITY AS u(b, i)
            WHERE m2.agent_kind = m.agent_kind AND m2.minute >= $1
            GROUP BY i) AS x) AS latency_buckets,
       sum(cache_hits)::bigint AS cache_hits, sum(cache_misses)::bigint AS cache_misses,
       sum(cache_latency_saved_us)::bigint AS cache_latency_saved_us,
       sum(cache_tokens_saved)::bigint AS cache_tokens_saved
FROM agent_metrics_minute m
WHERE minute >= $1
GROUP BY agent_kind
ORDER BY agent_kind
"""

LAG = """
SELECT topic, kafka_partition, next_offset, end_offset, updated_at,
       CASE WHEN end_offset IS NULL THEN NULL ELSE greatest(end_offset - next_offset, 0) END AS lag
FROM projector_offsets ORDER BY topic, kafka_partition
"""


def alive_since(now: datetime, window_s: float) -> datetime:
    """Agents seen after this moment count as alive."""
    return now - timedelta(seconds=window_s)
