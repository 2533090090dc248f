"""``agentlog topics`` and ``agentlog schemas`` from a shell, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentlog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_topics_create_is_idempotent(kafka_bootstrap: str) -> None:
    env = {"AGENTLOG_TOPIC_PREFIX": f"cli{uuid.uuid4().hex[:8]}", "AGENTLOG_PARTITIONS": "2"}
    first = run_cli(
        "topics", "create", "--kind", "writer", "--json", "--kafka", kafka_bootstrap, env=env
    )
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created[f"{env['AGENTLOG_TOPIC_PREFIX']}.tasks.writer"] is True
    assert all(created.values())
    second = run_cli("topics", "create", "--kind", "writer", "--kafka", kafka_bootstrap, env=env)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert second.stdout.count("exists") == len(created)


def test_topics_create_names_the_unreachable_broker() -> None:
    result = run_cli("topics", "create", "--kafka", "127.0.0.1:1")
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_agent_kind_is_a_usage_error() -> None:
    result = run_cli("topics", "create", "--kind", "Bad Kind!", "--kafka", "127.0.0.1:1")
    assert result.returncode == 2
    assert "Bad Kind!" in result.stderr


def test_schemas_lists_every_event_with_its_fingerprint() -> None:
    result = run_cli("schemas", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(
        list((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))
    )
    assert all(len(row["fingerprint"]) == 16 for row in rows)
