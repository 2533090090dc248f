"""The web page in a real browser: headless Chromium against the served API and projection.

Events of a few workflows (every demo: successes, a retry, a cancel, a
rejection), locks and agents are produced to the broker and folded by the real
projector into PostgreSQL; uvicorn serves the real app. Chromium loads each
view, runs its JavaScript (``--virtual-time-budget``) and prints the DOM
(``--dump-dom``), which the test reads back.

Chromium is the Debian package ``chromium`` (``/usr/bin/chromium``). Without it
the test is skipped, except under CI (``CI=true``), where it fails. Set
``AGENTLOG_WEB_SCREENSHOTS`` to a directory to also save a PNG of each view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import uvicorn

from agentlog.projections.api import create_app
from agentlog.projections.config import ProjectionSettings
from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.settings import Settings
from agentlog.streams.embedded.process import pick_free_port
from tests.integration.projections.support import produce, scenario

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Virtual milliseconds the page's scripts get before the DOM is printed.
BUDGET_MS = 8000


@pytest.fixture
def chromium() -> str:
    """The Chromium binary; skipped without one, except under CI."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (
        f"headless Chromium is needed for the web page test and {CHROMIUM} is missing: "
        "apt-get install -y --no-install-recommends chromium"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class Element:
    """One element of a dumped DOM, with the text inside it."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.text = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Dom(HTMLParser):
    """Every element of an HTML document, in document order (<template> contents skipped)."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._templates = 0  # depth inside <template>: the views' blueprints, not the page
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "template" or self._templates:
            self._templates += tag == "template"
            return
        element = Element(
            tag, {k: v or "" for k, v in attrs}, self._open[-1] if self._open else None
        )
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self._templates:
            self._templates -= tag == "template"
            return
        for n in range(len(self._open) - 1, -1, -1):
            if self._open[n].tag == tag:
                del self._open[n:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str, **attrs: str) -> list[Element]:
        """Elements of ``tag`` whose attributes contain ``attrs`` (class: one of the classes)."""
        found = []
        for e in self.elements:
            if e.tag != tag:
                continue
            if all(
                (v in e.classes) if k == "class_" else e.attrs.get(k.replace("_", "-")) == v
                for k, v in attrs.items()
            ):
                found.append(e)
        return found

    def children(self, parent: Element, tag: str) -> list[Element]:
        return [e for e in self.elements if e.parent is parent and e.tag == tag]

    def view(self) -> Element:
        (main,) = self.find("main")
        return main


async def render(chromium: str, url: str, profile: Path, screenshot: Path | None = None) -> Dom:
    """The DOM of ``url`` after its scripts ran (and a screenshot of it, if asked)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={BUDGET_MS}",
        "--window-size=1280,1600",
    ]
    if screenshot is not None:
        await _chromium(chromium, [*flags, f"--screenshot={screenshot}", url])
    return Dom(await _chromium(chromium, [*flags, "--dump-dom", url]))


async def _chromium(chromium: str, args: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-4000:]
    return out.decode()


@contextlib.asynccontextmanager
async def served(settings: Settings, schema: str, token: str | None = None) -> AsyncIterator[str]:
    """The real app on a free port of 127.0.0.1; yields its base URL."""
    app = create_app(settings, ProjectionSettings(schema=schema, api_token=token))
    port = pick_free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes no event
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def project_recent_workflows(settings: Settings, schema: str, workflows: int) -> None:
    """A scenario of a few minutes ago (so the per-minute charts have data), projected."""
    now = datetime.now(UTC) - timedelta(minutes=3)
    await produce(settings, scenario(settings.topic_prefix, workflows, now=now))
    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(60)


def screenshots() -> Path | None:
    where = os.environ.get("AGENTLOG_WEB_SCREENSHOTS")
    if not where:
        return None
    Path(where).mkdir(parents=True, exist_ok=True)
    return Path(where)


@pytest.mark.timeout(300)
async def test_the_page_shows_workflows_timelines_and_charts(
    settings: Settings, schema: str, chromium: str, tmp_path: Path
) -> None:
    await project_recent_workflows(settings, schema, workflows=7)
    shots = screenshots()
    async with served(settings, schema) as base, httpx.AsyncClient(base_url=base) as http:
        listed = (await http.get("/workflows", params={"limit": 500})).json()["items"]
        assert len(listed) == 7
        root = await http.get("/")
        assert root.status_code == 307
        assert root.headers["location"] == "/ui/"

        # the list: a row per workflow, linking to it, with its status
        page = await render(
            chromium,
            f"{base}/ui/",
            tmp_path / "p1",
            shots / "workflows.png" if shots else None,
        )
        assert page.view().attrs.get("data-ready") == "true", page.view().text[:2000]
        rows = {
            r.attrs["data-workflow-id"]: r for r in page.find("tr") if "data-workflow-id" in r.attrs
        }
        assert set(rows) == {w["workflow_id"] for w in listed}
        for w in listed:
            links = [a.attrs["href"] for a in page.find("a") if a.text == w["workflow_id"]]
            assert links == [f"#/workflows/{w['workflow_id']}"]
            assert w["status"] in rows[w["workflow_id"]].text

        # a succeeded workflow: a bar per step attempt, labelled with its step
        chosen = next(w for w in listed if w["status"] == "succeeded")
        workflow_id = chosen["workflow_id"]
        timeline = (await http.get(f"/workflows/{workflow_id}/timeline")).json()["steps"]
        assert timeline
        history = await http.get(f"/workflows/{workflow_id}/history", params={"limit": 500})
        for attempt in range(3):
            page = await render(
                chromium,
                f"{base}/ui/#/workflows/{workflow_id}",
                tmp_path / f"p2-{attempt}",
                shots / "workflow.png" if shots and not attempt else None,
            )
            # the event table fills from a stream; on a loaded machine its first chunk
            # once came after chromium's virtual-time budget (a clean-clone CI run with
            # Kafka's JVM busy): render again then; every event is still required below
            (events,) = page.find("tbody", data_role="events")
            if len(page.children(events, "tr")) == len(history.json()["items"]):
                break
        view = page.view()
        assert view.attrs.get("data-ready") == "true", view.text[:2000]
        assert workflow_id in page.find("h1")[0].text
        bars = page.find("g", class_="bar")
        # (drawn in the order they started)
        drawn = sorted((b.attrs["data-step"], *sorted(b.classes)) for b in bars)
        assert drawn == sorted((s["step"], "bar", f"status-{s['status']}") for s in timeline)
        for bar in bars:
            assert bar.attrs["data-step"] in bar.text  # the label (and the tooltip)
        assert len(page.find("rect", class_="span")) == len(timeline)
        assert page.find("svg", class_="timeline")
        # the event history, every event of it, arrived through the live tail
        rows = page.children(events, "tr")
        assert len(rows) == len(history.json()["items"])
        assert sorted(page.children(row, "td")[2].text for row in rows) == sorted(
            e["type"] for e in history.json()["items"]
        )
        # live, or ended: the tail ends about a second (real time) after the terminal event
        assert page.find("span", data_role="live")[0].text in ("● live", "(ended)")
        # a finished workflow offers no cancel or signal
        (actions,) = page.find("section", data_role="actions")
        assert "hidden" in actions.attrs

        # metrics: the per-minute and latency charts, locks and agents
        page = await render(
            chromium,
            f"{base}/ui/#/metrics",
            tmp_path / "p3",
            shots / "metrics.png" if shots else None,
        )
        view = page.view()
        assert view.attrs.get("data-ready") == "true", view.text[:2000]
        stats = (await http.get("/stats", params={"minutes": 15})).json()
        assert stats["agent_kinds"]
        assert len(page.find("svg", class_="barchart")) == len(stats["agent_kinds"]) + 1
        # one chart per kind: a bar per minute of the window, summing to the kind's totals
        (throughput,) = page.find("div", data_role="throughput")
        drawn_totals = {}
        for figure in page.children(throughput, "figure"):
            (chart,) = page.children(figure, "svg")
            counts = {"completed": 0, "failed": 0}
            for bar in page.children(chart, "rect"):
                found = re.search(r": (completed|failed) (\d+)$", bar.text)  # its <title>
                if found:
                    counts[found[1]] += int(found[2])
            assert len([b for b in page.children(chart, "rect") if b.text]) == 15 * 2
            drawn_totals[page.children(figure, "figcaption")[0].text] = counts
        assert drawn_totals == {
            k["agent_kind"]: {"completed": k["completed"], "failed": k["failed"]}
            for k in stats["agent_kinds"]
        }
        assert sum(c["completed"] for c in drawn_totals.values()) > 0
        # the latency chart: p50, p95 and p99 of each kind
        for series in ("p50", "p95", "p99"):
            bars = page.find("rect", class_=f"series-{series}")
            assert len([b for b in bars if b.text]) == len(stats["agent_kinds"])
        locks = page.find("tbody", data_role="locks")[0]
        assert locks.text.count(f"{settings.topic_prefix}:db/") == 3
        agents = page.find("tbody", data_role="agents")[0]
        assert agents.text.count(f"{settings.topic_prefix}-agent-") == 3


async def test_with_a_token_the_page_loads_and_asks_for_it(
    settings: Settings, schema: str, chromium: str, tmp_path: Path
) -> None:
    await project_recent_workflows(settings, schema, workflows=1)
    async with (
        served(settings, schema, token="s3cret") as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for path in ("/ui/", "/ui/app.js", "/ui/app.css"):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "s3cret" not in response.text
            assert "default-src 'none'" in response.headers["content-security-policy"]
        assert (await http.get("/workflows")).status_code == 401
        page = await render(chromium, f"{base}/ui/", tmp_path / "p")
        (form,) = page.find("form", id="token-form")
        assert "hidden" not in form.attrs
        (status,) = page.find("p", id="status")
        assert "AGENTLOG_API_TOKEN" in status.text
        assert not [r for r in page.find("tr") if "data-workflow-id" in r.attrs]
