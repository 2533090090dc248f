"""The web page's files: packaged, served (without a token) with their types, and safe."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import httpx
import pytest

from agentlog.projections.api import create_app, web
from agentlog.projections.config import ProjectionSettings
from agentlog.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
#: Nothing listens there: creating the app connects to nothing, and the page needs nothing.
DSN = "postgresql://nobody@127.0.0.1:9/nothing"


def static(name: str) -> str:
    return (resources.files("agentlog.projections.api") / "static" / name).read_text("utf-8")


def client(token: str | None = None) -> httpx.AsyncClient:
    app = create_app(Settings(postgres_dsn=DSN), ProjectionSettings(schema="s", api_token=token))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def test_the_files_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["agentlog.projections.api"]
    for name in web.FILES:
        assert static(name).strip(), name
    assert {p.name for p in web.STATIC.iterdir()} == set(web.FILES)


@pytest.mark.parametrize("token", [None, "s3cret"])
async def test_the_page_is_served_with_its_types_and_without_a_token(token: str | None) -> None:
    async with client(token) as api:
        for path in ("/", "/ui"):
            response = await api.get(path)
            assert response.status_code == 307, path
            assert response.headers["location"] == "/ui/"
        for path, name in (("/ui/", "index.html"), *((f"/ui/{n}", n) for n in web.FILES)):
            response = await api.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == web.FILES[name]
            assert response.text == static(name)
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert (await api.head(path)).status_code == 200
        assert (await api.get("/ui/secrets.txt")).status_code == 404
        assert (await api.get("/ui/%2e%2e/pyproject.toml")).status_code == 404
        response = await api.post("/ui/")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        if token is not None:
            assert (await api.get("/workflows")).status_code == 401
            assert (await api.get("/openapi.json")).status_code == 401
            headers = {"Authorization": f"Bearer {token}"}
            spec = (await api.get("/openapi.json", headers=headers)).json()
        else:
            spec = (await api.get("/openapi.json")).json()
        assert not [p for p in spec["paths"] if p == "/" or p.startswith("/ui")]


def test_data_never_enters_the_dom_as_html() -> None:
    script = static("app.js")
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "DOMParser",
        "createContextualFragment",
        "srcdoc",
    ):
        assert sink not in script, f"app.js uses {sink}: build elements and set textContent"
    # links built from data stay on the page (no javascript: or other URLs from data)
    links = re.findall(r"href:\s*(\S+)", script)
    assert links
    assert all(link.startswith("`#") for link in links), links
    # on* attributes become listeners of functions, never strings of code
    assert 'name.startsWith("on")' in script


def test_the_page_loads_nothing_from_elsewhere_and_nothing_inline() -> None:
    page = static("index.html")
    for name in web.FILES:
        text = static(name).replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name
        assert "@import" not in text, name
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="app.js" defer>']
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline handlers (the CSP forbids them)
    assert "sessionStorage" in static("app.js")  # the token stays in the tab, not the page
    assert "localStorage" not in static("app.js")
