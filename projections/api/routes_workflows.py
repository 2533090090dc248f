"""Workflow routes: list, state (``as_of``), history, timeline, live tail, and the writes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from agentlog.client import RequestError, state_to_json
from agentlog.errors import SchemaError
from agentlog.projections.api import queries
from agentlog.projections.api.models import (
    Accepted,
    CancelWorkflow,
    EventPage,
    Problem,
    SendSignal,
    StartByName,
    StartInline,
    Status,
    Timeline,
    WorkflowPage,
    WorkflowState,
)
from agentlog.projections.api.params import (
    TIME_CURSOR,
    InvalidParameter,
    Rfc3339,
    aware,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from agentlog.projections.api.state import ApiState
from agentlog.projections.payload import event_from_dict
from agentlog.workflow import WorkflowState as CoreState
from agentlog.workflow import fold
from agentlog.workflow.errors import JournalError

router = APIRouter(tags=["workflows"])

WorkflowId = Annotated[str, Path(min_length=1, max_length=200, description="the workflow id")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1000,
        pattern=TIME_CURSOR,
        description="next_cursor of the previous page",
    ),
]
KeyCursor = Annotated[
    str | None,
    Query(max_length=1000, description="next_cursor of the previous page"),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such workflow"}
}


def _pair(cursor: str | None) -> tuple[datetime, str] | None:
    return decode_cursor(cursor) if cursor else None


def state_of(request: Request) -> ApiState:
    """The app's shared state (database, writer, settings)."""
    state: ApiState = request.app.state.api
    return state


@router.get("/workflows", response_model=WorkflowPage, summary="List workflows, newest first")
async def list_workflows(
    request: Request,
    *,
    status: Annotated[Status | None, Query(description="only this status")] = None,
    definition: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    created_after: Annotated[Rfc3339 | None, Query(description="created at or after")] = None,
    created_before: Annotated[Rfc3339 | None, Query(description="created before")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Workflows by creation time (their first journal event), filtered, cursor-paginated."""
    after = _pair(cursor)
    async with state_of(request).db.connection() as conn:
        rows = await queries.list_workflows(
            conn,
            status=status.value if status else None,
            definition=definition,
            created_after=parse_time("created_after", created_after),
            created_before=parse_time("created_before", created_before),
            after=after,
            limit=limit + 1,
        )
    items = [queries.workflow_summary(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": items,
        "next_cursor": encode_cursor(last["created_at"], last["workflow_id"]) if last else None,
    }


@router.get(
    "/workflows/{workflow_id}",
    response_model=WorkflowState,
    responses=NOT_FOUND,
    summary="A workflow's state, now or as of an event or a time",
)
async def get_workflow(
    request: Request,
    workflow_id: WorkflowId,
    as_of: Annotated[
        str | None,
        Query(
            max_length=200,
            description="an event id of this workflow's history (its journal up to and "
            "including that event), or an ISO 8601 time (journal events that occurred by then)",
        ),
    ] = None,
) -> dict[str, Any] | JSONResponse:
    """The workflow's archived journal folded with the orchestrator's own ``fold``."""
    async with state_of(request).db.connection() as conn:
        events = await queries.journal(conn, workflow_id)
        if not events:
            return _not_found(f"workflow {workflow_id!r} has no journal events (yet)")
        chosen, problem = await _prefix(conn, workflow_id, events, as_of)
    if problem is not None:
        return _not_found(problem)
    try:
        state = fold(event_from_dict(json.loads(r["payload"])) for r in chosen)
    except (JournalError, SchemaError) as e:
        return JSONResponse(
            {"detail": f"workflow {workflow_id!r}: its journal cannot be folded here: {e}"},
            status_code=409,
        )
    if state is None:
        return _not_found(f"workflow {workflow_id!r} had not started as of {as_of}")
    return _state_body(state, chosen[-1]["event_id"], as_of)


async def _prefix(
    conn: Any, workflow_id: str, events: list[Any], as_of: str | None
) -> tuple[list[Any], str | None]:
    """The journal events ``as_of`` selects, or a problem for a 404."""
    if as_of is None:
        return events, None
    moment = _as_time(as_of)
    if moment is None:
        found = await queries.find_event(conn, workflow_id, as_of)
        if found is None:
            return [], (
                f"as_of={as_of!r} is neither an ISO 8601 time nor the id of an event of "
                f"workflow {workflow_id!r}"
            )
        ids = [r["event_id"] for r in events]
        if as_of in ids:
            return events[: ids.index(as_of) + 1], None
        moment = found["occurred_at"]
    chosen = [r for r in events if r["occurred_at"] <= moment]
    if not chosen:
        return [], f"workflow {workflow_id!r} had no journal events as of {as_of}"
    return chosen, None


def _as_time(text: str) -> datetime | None:
    try:
        return aware(datetime.fromisoformat(text.replace("Z", "+00:00"))).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _state_body(state: CoreState, last_event_id: str, as_of: str | None) -> dict[str, Any]:
    body: dict[str, Any] = state_to_json(state)
    body["journal_length"] = state.journal_length
    body["last_event_id"] = last_event_id
    body["as_of"] = as_of
    return body


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=404)


@router.get(
    "/workflows/{workflow_id}/history",
    response_model=EventPage,
    responses=NOT_FOUND,
    summary="Every archived event of a workflow",
)
async def workflow_history(
    request: Request,
    workflow_id: WorkflowId,
    type: Annotated[
        list[str] | None, Query(description="only these event types", max_length=40)
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any] | JSONResponse:
    """Requests, decisions, tasks, responses and dead letters of the workflow, oldest first."""
    after = _pair(cursor)
    async with state_of(request).db.connection() as conn:
        rows = await queries.history(
            conn,
            workflow_id,
            types=type,
            after=after,
            limit=limit + 1,
        )
        if not rows and after is None and not await queries.workflow_exists(conn, workflow_id):
            return _not_found(f"no events of workflow {workflow_id!r}")
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": [queries.event_out(r) for r in rows[:limit]],
        "next_cursor": encode_cursor(last["occurred_at"], last["event_id"]) if last else None,
    }


@router.get(
    "/workflows/{workflow_id}/timeline",
    response_model=Timeline,
    responses=NOT_FOUND,
    summary="Every step attempt with its times",
)
async def workflow_timeline(
    request: Request, workflow_id: WorkflowId
) -> dict[str, Any] | JSONResponse:
    """One entry per attempt of each item of each run of each step (and skips and joins)."""
    async with state_of(request).db.connection() as conn:
        steps = await queries.timeline(conn, workflow_id)
        if not steps and not await queries.workflow_exists(conn, workflow_id):
            return _not_found(f"no workflow {workflow_id!r}")
    return {"workflow_id": workflow_id, "steps": steps}


@router.get(
    "/workflows/{workflow_id}/events",
    responses={
        200: {
            "description": "server-sent events: `id` event id, `event` type, `data` the event",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "event": {"type": "string"},
                            "data": {"type": "string"},
                            "retry": {"type": "integer"},
                        },
                    }
                }
            },
        },
        **NOT_FOUND,
    },
    response_class=StreamingResponse,
    response_model=None,
    summary="Live tail of a workflow's events (server-sent events)",
)
async def workflow_events(
    request: Request,
    workflow_id: WorkflowId,
    follow: Annotated[
        bool, Query(description="keep the stream open for new events until the workflow ends")
    ] = True,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=200, description="resume after it")
    ] = None,
) -> StreamingResponse | JSONResponse:
    """History first, then new events as the projector stores them; ``end`` once terminal."""
    api = state_of(request)
    async with api.db.connection() as conn:
        if not await queries.workflow_exists(conn, workflow_id):
            return _not_found(f"no workflow {workflow_id!r}")
    return StreamingResponse(
        _tail(request, api, workflow_id, follow=follow, resume_after=last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _tail(
    request: Request, api: ApiState, workflow_id: str, *, follow: bool, resume_after: str | None
) -> AsyncIterator[str]:
    seen: set[str] = set()
    skipping = resume_after is not None
    idle = 0.0
    ended_at: float | None = None  # when the terminal event was first seen
    loop = asyncio.get_running_loop()
    while True:
        async with api.db.connection() as conn:
            rows = await queries.history(conn, workflow_id, types=None, after=None, limit=100_000)
        fresh = False
        for row in rows:
            event_id = row["event_id"]
            if event_id in seen:
                continue
            seen.add(event_id)
            fresh = True
            if ended_at is None and row["type"] in queries.TERMINAL_TYPES:
                ended_at = loop.time()
            if skipping:
                skipping = event_id != resume_after
                continue
            yield f"id: {event_id}\nevent: {row['type']}\ndata: {row['payload']}\n\n"
        # after the terminal event, wait out events of other topics still being projected
        settled = ended_at is not None and not fresh and loop.time() - ended_at >= api.end_grace
        if settled or not follow:
            yield "event: end\ndata: {}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(api.poll_interval)
        idle += api.poll_interval
        if idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"


@router.post(
    "/workflows",
    status_code=202,
    response_model=Accepted,
    responses={503: {"model": Problem, "description": "Kafka is unavailable"}},
    summary="Start a workflow (produces a WorkflowRequested)",
)
async def start_workflow(request: Request, body: StartByName | StartInline) -> dict[str, Any]:
    """Produce the request; the orchestrator starts (or rejects) the workflow."""
    client = await state_of(request).writer.client()
    try:
        workflow_id = await client.submit(
            body.definition if isinstance(body, StartByName) else None,
            body.input,
            version=body.version if isinstance(body, StartByName) else None,
            spec=body.spec if isinstance(body, StartInline) else None,
            priority=body.priority,
            idempotency_key=body.idempotency_key,
            workflow_id=body.workflow_id,
            labels=body.labels,
        )
    except (RequestError, SchemaError) as e:
        raise InvalidParameter("body", "", None, str(e)) from e
    return {"workflow_id": workflow_id, "accepted": True}


@router.post(
    "/workflows/{workflow_id}/cancel",
    status_code=202,
    response_model=Accepted,
    responses={503: {"model": Problem, "description": "Kafka is unavailable"}},
    summary="Ask to cancel a workflow (produces a CancelRequested)",
)
async def cancel_workflow(
    request: Request, workflow_id: WorkflowId, body: CancelWorkflow | None = None
) -> dict[str, Any]:
    """A no-op for a workflow that already ended; the orchestrator decides."""
    client = await state_of(request).writer.client()
    try:
        await client.cancel(workflow_id, body.reason if body else "")
    except (RequestError, SchemaError) as e:
        raise InvalidParameter("body", "reason", None, str(e)) from e
    return {"workflow_id": workflow_id, "accepted": True}


@router.post(
    "/workflows/{workflow_id}/signals",
    status_code=202,
    response_model=Accepted,
    responses={503: {"model": Problem, "description": "Kafka is unavailable"}},
    summary="Send a signal to a workflow (produces a SignalSent)",
)
async def signal_workflow(
    request: Request, workflow_id: WorkflowId, body: SendSignal
) -> dict[str, Any]:
    """E.g. a human approval a signal step waits for."""
    client = await state_of(request).writer.client()
    try:
        await client.signal(workflow_id, body.signal, body.payload)
    except (RequestError, SchemaError) as e:
        raise InvalidParameter("body", "signal", body.signal, str(e)) from e
    return {"workflow_id": workflow_id, "accepted": True}
