"""The commands as processes: SIGKILLed projectors lose nothing; workers; rebuild --dry-run."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.projections.tables import ALL_TABLES
from agentlog.settings import Settings
from tests.integration.projections.support import produce, scenario
from tests.integration.projections.test_projections_flow import assert_matches_topics

ROOT = Path(__file__).resolve().parents[3]


def command(settings: Settings, schema: str, *args: str) -> list[str]:
    assert settings.kafka_bootstrap is not None
    assert settings.postgres_dsn is not None
    return [
        sys.executable,
        "-m",
        "agentlog.projections",
        *args,
        "--kafka",
        settings.kafka_bootstrap,
        "--postgres",
        settings.postgres_dsn,
        "--topic-prefix",
        settings.topic_prefix,
        "--schema",
        schema,
    ]


async def spawn(argv: list[str], log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, cwd=ROOT, env=env | {"AGENTLOG_LOG_LEVEL": "INFO"}
        )


async def stored_records(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                f"SELECT coalesce(sum(next_offset), 0) FROM {schema}.projector_offsets"
            )
            or 0
        )
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


@pytest.mark.timeout(240)
async def test_sigkilled_projector_processes_lose_nothing(
    settings: Settings, schema: str, tmp_path: Path
) -> None:
    assert settings.postgres_dsn is not None
    items = scenario(settings.topic_prefix, 120)
    producing = asyncio.create_task(
        produce(settings, items, chunk=30, pause=0.05, duplicates=0.03, poison_every=151)
    )
    rng = random.Random(3)
    argv = command(settings, schema, "projector", "run", "--batch-size", "40")
    log = tmp_path / "projector.log"
    progress = []
    for _ in range(4):
        process = await spawn(argv, log)
        await asyncio.sleep(rng.uniform(1.5, 3.0))
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        progress.append(await stored_records(settings.postgres_dsn, schema))
    await producing
    assert progress[-1] > 0, log.read_text()[-3000:]

    # two worker processes finish the job and stop cleanly on SIGTERM
    workers = await spawn(
        command(settings, schema, "projector", "run", "--workers", "2"), tmp_path / "workers.log"
    )
    probe = Projector(settings, ProjectorConfig(schema=schema, dead_letters=False))
    try:
        targets = await probe.end_offsets_now()
    finally:
        await probe.close()
    async with asyncio.timeout(90):
        # another process's log and table: nothing to await but polling
        while "2 workers running" not in (tmp_path / "workers.log").read_text():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        while await stored_records(settings.postgres_dsn, schema) < sum(targets.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    workers.send_signal(signal.SIGTERM)
    assert await workers.wait() == 0, (tmp_path / "workers.log").read_text()[-3000:]

    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(60)
        await projector.wait_caught_up(30)
        async with projector.pool.acquire() as conn:
            await assert_matches_topics(conn, settings)

    rebuilt = await asyncio.create_subprocess_exec(
        *command(settings, schema, "rebuild", "all", "--dry-run"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    output, _ = await rebuilt.communicate()
    text = output.decode()
    assert rebuilt.returncode == 0, text
    assert "DIFFERS" not in text
    assert text.count(" equal ") == len(ALL_TABLES)


async def test_bad_flags_exit_2_and_name_the_flag(settings: Settings) -> None:
    connection = command(settings, "ok")[3:-2]  # --kafka … --topic-prefix …, no --schema
    for args, needle in (
        (["projector", "run", "--partitions", "a,b"], "--partitions"),
        (["projector", "run", "--schema", "Bad-Name"], "--schema"),
        (["rebuild", "nothing"], "invalid choice"),
        (["api", "--port", "70000"], "--port"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentlog.projections",
            *args,
            *connection,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            async with asyncio.timeout(30):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 2, (args, output)
        assert needle in output.decode(), (args, output)
