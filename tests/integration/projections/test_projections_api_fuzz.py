"""A schemathesis run (every check) against the served ``/openapi.json`` finds no server error."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import uvicorn

from agentlog.projections.api import create_app
from agentlog.projections.config import ProjectionSettings
from agentlog.settings import Settings
from agentlog.streams.embedded.process import pick_free_port
from tests.integration.projections.test_projections_api import projected

#: Hypothesis examples per operation and phase.
EXAMPLES = 40


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_server_error(
    settings: Settings, schema: str, tmp_path: Path
) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install 'agentlog[test]')")
    await projected(settings, schema, workflows=8)
    app = create_app(settings, ProjectionSettings(schema=schema))
    port = pick_free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes no event
                await asyncio.sleep(0.05)
        run = await asyncio.create_subprocess_exec(
            cli,
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--generation-deterministic",
            # PostgreSQL text cannot hold NUL: such ids and filters are answered 422
            # (test_bad_input_gets_a_4xx_naming_the_field), not "accepted"
            "--generation-allow-x00",
            "false",
            "--request-timeout",
            "20",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # schemathesis keeps its example database in .schemathesis/
        )
        output, _ = await run.communicate()
    finally:
        server.should_exit = True
        await serving
    text = output.decode(errors="replace")
    assert run.returncode == 0, text[-12000:]
