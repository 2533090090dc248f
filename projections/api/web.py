"""The web page of the query API: workflows, a timeline per workflow, metrics charts.

The page is three static files (``static/index.html``, ``app.js``, ``app.css``,
hand-written, no CDN, no build step) served under ``/ui/``; ``GET /`` redirects
there. It reads everything through the JSON routes, like any other client.

The files are served by :class:`WebPage`, an ASGI middleware outside the bearer
token check: they hold no data and no secret, so they load without a token;
with ``AGENTLOG_API_TOKEN`` set, the page asks for the token, keeps it in the
tab's ``sessionStorage`` and sends it as ``Authorization: Bearer`` on every API
call (the token is never written into the page). Being no routes, the files are
not in the OpenAPI schema. Responses carry a strict Content-Security-Policy
(only this origin's script, style and connections; no framing).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC = Path(__file__).resolve().parent / "static"

#: Where the page is served (``GET /`` redirects here).
PAGE_PATH = "/ui/"

#: The files served under ``/ui/`` and their content types; nothing else is.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI) -> None:
    """Serve the page from ``app``: call after every other middleware (it must be outermost)."""
    app.add_middleware(WebPage)


class WebPage:
    """Answer ``/`` and ``/ui/…`` with the static page; pass every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = respond(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def respond(scope: Scope) -> Response | None:
    """The response to a request for the page, or None when it is an API request."""
    path: str = scope["path"]
    if path not in ("/", "/ui") and not path.startswith(PAGE_PATH):
        return None
    if scope["method"] not in ("GET", "HEAD"):
        return JSONResponse(
            {"detail": f"{scope['method']} is not allowed here; use GET, HEAD"},
            status_code=405,
            headers={"Allow": "GET, HEAD"},
        )
    if path in ("/", "/ui"):
        return RedirectResponse(scope.get("root_path", "") + PAGE_PATH, status_code=307)
    name = path.removeprefix(PAGE_PATH) or "index.html"
    media_type = FILES.get(name)
    if media_type is None:
        return JSONResponse(
            {"detail": f"no file {name!r} here; the page is {PAGE_PATH}"}, status_code=404
        )
    return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)
