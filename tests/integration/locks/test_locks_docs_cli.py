"""docs/locks.md's runnable example runs as written; ``agentlog locks show`` prints a lock."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from agentlog.agents.locks.cli import add_locks_command
from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.runner import LockManager
from agentlog.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "locks.md"


@pytest.mark.timeout(120)
async def test_the_fencing_example_of_the_docs_runs(
    *,
    settings: Settings,
    manager: LockManager,
    postgres_dsn: str,
    redis_url: str,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [example] = [
        b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "main()" in b
    ]
    assert example.rstrip().endswith("asyncio.run(main())")
    # the session's database is shared: a resource and tables of this test's own
    source = (
        example.replace("repo:acme/shop", f"repo:{unique_name}")
        .replace("deployments", f"deployments_{unique_name.replace('-', '_')}"[:60])
        .rstrip()
        .removesuffix("asyncio.run(main())")
    )
    assert settings.kafka_bootstrap is not None
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("AGENTLOG_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("AGENTLOG_PARTITIONS", str(settings.partitions))
    monkeypatch.setenv("AGENTLOG_POSTGRES_DSN", postgres_dsn)
    monkeypatch.setenv("AGENTLOG_REDIS_URL", redis_url)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(source, f"{DOC}:fencing example", "exec"), namespace)
    await namespace["main"]()  # type: ignore[operator]
    assert "token 1: postgres True, redis True" in capsys.readouterr().out


@pytest.mark.timeout(120)
async def test_locks_show_prints_holder_queue_and_last_token(
    settings: Settings,
    manager: LockManager,
    locks: LockClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # only a real CLI process configures logging handlers; keep pytest's
    monkeypatch.setattr("agentlog.cli.configure_logging", lambda level: None)
    parser = argparse.ArgumentParser()
    add_locks_command(parser.add_subparsers())
    assert settings.kafka_bootstrap is not None
    base = ["--kafka", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    async with locks.lock("repo:shown", ttl=10) as lease:
        args = parser.parse_args(["locks", "show", "repo:shown", *base])
        assert await args.run(args) == 0
        text = capsys.readouterr().out
        assert f"test (request {lease.request_id}), token 1" in text
        args = parser.parse_args(["locks", "show", "repo:shown", "--json", *base])
        assert await args.run(args) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["holder"]["fencing_token"] == 1
        assert data["last_token"] == 1
    args = parser.parse_args(["locks", "show", "repo:never", *base])
    assert await args.run(args) == 0
    assert "never requested" in capsys.readouterr().out
