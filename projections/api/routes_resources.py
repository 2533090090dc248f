"""Locks, agents and dead letters (and redriving one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from agentlog.projections.api import queries
from agentlog.projections.api.models import (
    AgentList,
    DeadLetterOut,
    DeadLetterPage,
    LockDetail,
    LockList,
    Problem,
    Redriven,
)
from agentlog.projections.api.params import KIND_MAX_LENGTH, decode_cursor, encode_cursor
from agentlog.projections.api.routes_workflows import Cursor, KeyCursor, Limit, state_of

router = APIRouter()

_LOCK_COLUMNS = (
    "resource, status, holder, holder_request_id, fencing_token, lease_expires_at, granted_at, "
    "queue::text AS queue, requests, grants, queued, denials, releases, expiries, last_event_at"
)


def _lock(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["queue"] = json.loads(out["queue"])
    return out


@router.get("/locks", response_model=LockList, tags=["locks"], summary="Lock resources")
async def list_locks(
    request: Request,
    held: Annotated[bool | None, Query(description="only held (true) or free (false) ones")] = None,
    limit: Limit = 100,
    cursor: KeyCursor = None,
) -> dict[str, Any]:
    """Every resource ever locked, by name, with holder, token and queue."""
    after = cursor
    where: list[str] = []
    args: list[Any] = []
    if held is not None:
        args.append("held" if held else "free")
        where.append(f"status = ${len(args)}")
    if after is not None:
        args.append(after)
        where.append(f"resource > ${len(args)}")
    args.append(limit + 1)
    sql = f"SELECT {_LOCK_COLUMNS} FROM locks"  # noqa: S608 - fixed columns
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    sql += f" ORDER BY resource LIMIT ${len(args)}"
    async with state_of(request).db.connection() as conn:
        rows = await conn.fetch(sql, *args)
    more = len(rows) > limit
    return {
        "items": [_lock(r) for r in rows[:limit]],
        "next_cursor": rows[limit - 1]["resource"] if more else None,
    }


@router.get(
    "/locks/{resource:path}",
    response_model=LockDetail,
    responses={404: {"model": Problem, "description": "never locked"}},
    tags=["locks"],
    summary="A lock: holder, token, queue, requests and history",
)
async def get_lock(
    request: Request,
    resource: Annotated[str, Path(min_length=1, max_length=500)],
    history_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> dict[str, Any] | JSONResponse:
    """The resource's row, its latest requests and its latest Lock* events."""
    async with state_of(request).db.connection() as conn:
        row = await conn.fetchrow(
            f"SELECT {_LOCK_COLUMNS} FROM locks WHERE resource = $1",  # noqa: S608
            resource,
        )
        if row is None:
            return JSONResponse({"detail": f"resource {resource!r} was never locked"}, 404)
        requests = await conn.fetch(
            "SELECT * FROM lock_requests WHERE resource = $1 ORDER BY last_event_at DESC,"
            " request_id LIMIT 50",
            resource,
        )
        events = await conn.fetch(
            f"SELECT * FROM (SELECT {queries.EVENT_COLUMNS} FROM events WHERE key = $1"  # noqa: S608
            " ORDER BY occurred_at DESC, event_id DESC LIMIT $2) AS h"
            " ORDER BY occurred_at, event_id",
            resource,
            history_limit,
        )
    body = _lock(row)
    body["recent_requests"] = [dict(r) for r in requests]
    body["history"] = [queries.event_out(e) for e in events]
    return body


@router.get("/agents", response_model=AgentList, tags=["agents"], summary="Registered agents")
async def list_agents(
    request: Request,
    kind: Annotated[str | None, Query(min_length=1, max_length=KIND_MAX_LENGTH)] = None,
    alive: Annotated[bool | None, Query(description="only alive (true) or gone (false)")] = None,
    limit: Limit = 100,
    cursor: KeyCursor = None,
) -> dict[str, Any]:
    """Agent processes from their registrations and heartbeats; ``alive`` is computed now."""
    api = state_of(request)
    after = cursor
    since = queries.alive_since(datetime.now(UTC), api.alive_after_s)
    alive_sql = "(deregistered_at IS NULL AND last_seen_at >= $1)"
    where: list[str] = []
    args: list[Any] = [since]
    if kind is not None:
        args.append(kind)
        where.append(f"agent_kind = ${len(args)}")
    if alive is not None:
        where.append(alive_sql if alive else f"NOT {alive_sql}")
    if after is not None:
        args.append(after)
        where.append(f"agent_id > ${len(args)}")
    args.append(limit + 1)
    sql = f"SELECT *, {alive_sql} AS alive FROM agents"  # noqa: S608 - fixed columns
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    sql += f" ORDER BY agent_id LIMIT ${len(args)}"
    async with api.db.connection() as conn:
        rows = await conn.fetch(sql, *args)
    more = len(rows) > limit
    return {
        "items": [dict(r) for r in rows[:limit]],
        "next_cursor": rows[limit - 1]["agent_id"] if more else None,
    }


def _dead_letter(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["original_key"] = row["original_key"].hex() if row["original_key"] is not None else None
    out["raw"] = row["raw"].hex()
    out["headers"] = json.loads(row["headers"])
    return out


_DL_COLUMNS = (
    "event_id, occurred_at, original_topic, original_partition, original_offset, original_key, "
    "original_timestamp, error_reason, error, raw, headers::text AS headers, consumer_group"
)


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    tags=["dead letters"],
    summary="Dead letters, newest first",
)
async def list_dead_letters(
    request: Request,
    topic: Annotated[
        str | None, Query(min_length=1, max_length=300, description="original")
    ] = None,
    reason: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Records consumers could not decode or handle, kept byte for byte."""
    after = decode_cursor(cursor) if cursor else None
    where: list[str] = []
    args: list[Any] = []
    if topic is not None:
        args.append(topic)
        where.append(f"original_topic = ${len(args)}")
    if reason is not None:
        args.append(reason)
        where.append(f"error_reason = ${len(args)}")
    if after is not None:
        args += after
        where.append(f"(occurred_at, event_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    sql = f"SELECT {_DL_COLUMNS} FROM dead_letters"  # noqa: S608 - fixed columns
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    sql += f" ORDER BY occurred_at DESC, event_id DESC LIMIT ${len(args)}"
    async with state_of(request).db.connection() as conn:
        rows = await conn.fetch(sql, *args)
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": [_dead_letter(r) for r in rows[:limit]],
        "next_cursor": encode_cursor(last["occurred_at"], last["event_id"]) if last else None,
    }


DeadLetterId = Annotated[str, Path(min_length=1, max_length=200)]
_NO_DEAD_LETTER: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such dead letter"}
}


@router.get(
    "/dead-letters/{event_id}",
    response_model=DeadLetterOut,
    responses=_NO_DEAD_LETTER,
    tags=["dead letters"],
    summary="One dead letter",
)
async def get_dead_letter(
    request: Request, event_id: DeadLetterId
) -> dict[str, Any] | JSONResponse:
    """The dead letter with its raw bytes (hex)."""
    async with state_of(request).db.connection() as conn:
        row = await conn.fetchrow(
            f"SELECT {_DL_COLUMNS} FROM dead_letters WHERE event_id = $1",  # noqa: S608
            event_id,
        )
    if row is None:
        return JSONResponse({"detail": f"no dead letter {event_id!r}"}, 404)
    return _dead_letter(row)


@router.post(
    "/dead-letters/{event_id}/redrive",
    status_code=202,
    response_model=Redriven,
    responses={**_NO_DEAD_LETTER, 503: {"model": Problem, "description": "Kafka is unavailable"}},
    tags=["dead letters"],
    summary="Produce the original record again, byte for byte",
)
async def redrive(request: Request, event_id: DeadLetterId) -> dict[str, Any] | JSONResponse:
    """Produces the original key, value and headers to the original topic (after a fix)."""
    api = state_of(request)
    async with api.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT original_topic, original_key, raw, headers::text AS headers"
            " FROM dead_letters WHERE event_id = $1",
            event_id,
        )
    if row is None:
        return JSONResponse({"detail": f"no dead letter {event_id!r}"}, 404)
    headers = [
        (h["key"], bytes.fromhex(h["value"]) if h["value"] is not None else b"")
        for h in json.loads(row["headers"])
    ]
    producer = await api.writer.producer()
    future = await producer.send_raw(
        row["original_topic"], row["raw"], key=row["original_key"], headers=headers
    )
    sent = await future
    return {
        "event_id": event_id,
        "topic": sent.topic,
        "partition": sent.partition,
        "offset": sent.offset,
    }
