"""The query API application: routes, auth, and errors that say what to do.

:func:`create_app` builds a FastAPI app over the read models of one schema.
Nothing connects at import or creation: PostgreSQL and Kafka are reached on
first use, and while either is down the routes that need it answer 503 with a
body naming it (never 500). With ``AGENTLOG_API_TOKEN`` set every route,
``/openapi.json`` and ``/docs`` included, requires ``Authorization: Bearer``;
the static web page under ``/ui/`` does not (it asks for the token: see ``web``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from agentlog import __version__
from agentlog.projections.api import routes_ops, routes_resources, routes_workflows, web
from agentlog.projections.api.database import Database
from agentlog.projections.api.params import InvalidParameter
from agentlog.projections.api.state import ApiState
from agentlog.projections.api.writer import KafkaUnavailable, Writer
from agentlog.projections.config import ProjectionSettings
from agentlog.projections.db import describe, require_dsn
from agentlog.projections.errors import DatabaseUnavailable
from agentlog.settings import Settings

logger = logging.getLogger(__name__)

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def create_app(
    settings: Settings,
    projection: ProjectionSettings | None = None,
    *,
    alive_after_s: float = 30.0,
    poll_interval: float = 0.25,
) -> FastAPI:
    """The API over ``projection.schema`` of ``settings.postgres_dsn``.

    ``projection`` defaults to the projection fields of ``settings``.

    Raises:
        ConfigError: no PostgreSQL DSN is set.
    """
    projection = projection or ProjectionSettings.from_settings(settings)
    state = ApiState(
        settings=settings,
        projection=projection,
        db=Database(require_dsn(settings.postgres_dsn), projection.schema),
        writer=Writer(settings),
        alive_after_s=alive_after_s,
        poll_interval=poll_interval,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.writer.close()
            await state.db.close()

    app = FastAPI(
        title="agentlog query API",
        version=__version__,
        description=(
            "Read models of agentlog (workflows, steps, events, locks, agents, dead letters, "
            "metrics) projected from the Kafka topics, and writes that only produce events."
        ),
        lifespan=lifespan,
    )
    app.state.api = state
    app.include_router(routes_workflows.router)
    app.include_router(routes_resources.router)
    app.include_router(routes_ops.router)
    _add_error_handlers(app)
    _document_errors(app, token=projection.api_token is not None)
    if projection.api_token is not None:
        app.add_middleware(BearerAuth, token=projection.api_token)
    web.install(app)  # outermost: the page loads without a token, then sends it (web.py)
    return app


class BearerAuth:
    """Every request needs ``Authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        problem = "missing" if not given else "wrong"
        response = JSONResponse(
            {
                "detail": f"{problem} bearer token: send 'Authorization: Bearer <token>' with "
                "the token in AGENTLOG_API_TOKEN"
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="agentlog"'},
        )
        await response(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    def unavailable(detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(DatabaseUnavailable)
    async def database_down(request: Request, error: DatabaseUnavailable) -> JSONResponse:
        logger.warning("%s %s: %s", request.method, request.url.path, error)
        return unavailable(str(error))

    @app.exception_handler(KafkaUnavailable)
    async def kafka_down(request: Request, error: KafkaUnavailable) -> JSONResponse:
        return unavailable(str(error))

    @app.exception_handler(KafkaError)
    async def kafka_failed(request: Request, error: KafkaError) -> JSONResponse:
        return unavailable(f"Kafka did not take the event: {describe(error)}; try again")

    @app.exception_handler(InvalidParameter)
    async def invalid(request: Request, error: InvalidParameter) -> JSONResponse:
        return JSONResponse(error.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 405:
            # Allow must list every method of the path, not just the first route's
            allowed = _methods_of(app, request.scope)
            return JSONResponse(
                {"detail": f"{request.method} is not allowed here; use {', '.join(allowed)}"},
                status_code=405,
                headers={"Allow": ", ".join(allowed)},
            )
        return await http_exception_handler(request, error)

    @app.exception_handler(asyncpg.DataError)
    async def unstorable(request: Request, error: asyncpg.DataError) -> JSONResponse:
        # e.g. a NUL character: PostgreSQL text cannot hold it, so no id or filter can match
        problem = InvalidParameter(
            "request", "parameters", None, f"a value PostgreSQL cannot store: {describe(error)}"
        )
        return JSONResponse(problem.body(), status_code=422)


def _methods_of(app: FastAPI, scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match is not Match.NONE and isinstance(route, APIRoute):
            methods |= route.methods or set()
    return sorted(methods)


def _document_errors(app: FastAPI, *, token: bool) -> None:
    """Add the 503 (and with a token, 401 and the bearer scheme) to every operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).setdefault(
            "Problem",
            {
                "title": "Problem",
                "type": "object",
                "properties": {"detail": {"title": "Detail", "type": "string"}},
                "required": ["detail"],
            },
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "503",
                    {
                        "description": "PostgreSQL (or, for writes, Kafka) is unavailable",
                        "content": {"application/json": {"schema": _PROBLEM}},
                    },
                )
                if "requestBody" in operation:
                    responses.setdefault(
                        "400",
                        {
                            "description": "the body is not JSON",
                            "content": {"application/json": {"schema": _PROBLEM}},
                        },
                    )
                if token:
                    responses.setdefault(
                        "401",
                        {
                            "description": "missing or wrong bearer token",
                            "content": {"application/json": {"schema": _PROBLEM}},
                        },
                    )
        if token:
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
            }
            schema["security"] = [{"bearer": []}]
        app.openapi_schema = json.loads(json.dumps(schema))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
