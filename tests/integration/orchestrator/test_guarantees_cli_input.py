"""Guarantee: bad input to the CLI gets a clear error and changes nothing (docs/guarantees.md).

Each command runs as a user runs it, ``python -m agentlog …`` in a subprocess,
against the test's topics. "Changes nothing" is measured on the broker: the end
offset of every partition of every topic under the test's prefix (and the set
of topics) is the same before and after. A good submit at the end shows the
measure sees a single produced event.

Not covered here, because the CLI cannot tell locally (see docs/guarantees.md):
an unknown definition name (the orchestrator rejects it in the journal) and a
signal or cancel for a workflow id that does not exist (the orchestrator
ignores it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import REQUESTS

ROOT = Path(__file__).resolve().parents[3]
LONG_ID = "w" * 201

#: argv, the exit status (None: any failure), a fragment stderr must contain
BAD_COMMANDS: list[tuple[list[str], int | None, str]] = [
    (["submit", "pr-deploy", "--input", "{bad json"], 2, "--input='{bad json': not JSON"),
    (["submit", "pr-deploy", "--input", '{"pr": NaN}'], 2, "input is not JSON"),
    (["submit", "pr-deploy", "--input", "@/no/such/input.json"], 2, "cannot read the file"),
    (["submit", "pr-deploy", "--priority", "9"], 2, "priority=9: use 1 (lowest) to 5"),
    (["submit", "pr-deploy", "--priority", "high"], 2, "invalid int value: 'high'"),
    (["submit", "pr-deploy", "--version", "0"], 2, "version=0: versions start at 1"),
    (["submit", "pr-deploy", "--label", "team"], 2, "--label='team': not KEY=VALUE"),
    (["submit", "pr-deploy", "--workflow-id", LONG_ID], 2, "use 1-200 characters"),
    (["submit", "--spec", "/no/such/spec.json"], 2, "--spec='/no/such/spec.json'"),
    (["submit"], 2, "name a definition or pass --spec"),
    (["signal", "wf-1", "approve", "--payload", "{bad"], 2, "--payload='{bad': not JSON"),
    (["signal", "wf-1", ""], 2, "signal name is empty"),
    (["cancel", LONG_ID], 2, "use 1-200 characters"),
]


async def log_ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of every partition of every topic under the settings' prefix."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        prefix = f"{settings.topic_prefix}."
        topics = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        async with EventProducer(settings, client_id="test-log-ends") as producer:
            tps = [TopicPartition(t, p) for t in topics for p in await producer.partitions_for(t)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return ends


def changed(before: dict[TopicPartition, int], after: dict[TopicPartition, int]) -> dict[str, int]:
    """``topic:partition`` -> records added, for every partition that moved or appeared."""
    return {
        f"{tp.topic}:{tp.partition}": end - before.get(tp, 0)
        for tp, end in after.items()
        if end != before.get(tp)
    }


async def agentlog(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """``python -m agentlog ARGV --kafka … --topic-prefix …``: exit status, stdout, stderr."""
    assert settings.kafka_bootstrap is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env |= {"AGENTLOG_PARTITIONS": str(settings.partitions), "AGENTLOG_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentlog",
        *argv,
        *("--kafka", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.timeout(120)
async def test_bad_cli_input_gets_a_clear_error_and_produces_nothing(settings: Settings) -> None:
    before = await log_ends(settings)
    assert before, "the fixture created the topics"

    results = await asyncio.gather(*(agentlog(settings, *argv) for argv, _, _ in BAD_COMMANDS))
    for (argv, status, fragment), (code, out, err) in zip(BAD_COMMANDS, results, strict=True):
        ok = code != 0 if status is None else code == status
        assert ok, (argv, code, out, err)
        assert fragment in err, (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert out == "", (argv, out)  # no workflow id: nothing was requested
    assert changed(before, await log_ends(settings)) == {}

    # the measure sees one produced event: a good submit appends one request
    workflow_id = f"control-{uuid.uuid4().hex[:8]}"
    argv = ["submit", "pr-deploy", "--workflow-id", workflow_id]
    code, out, err = await agentlog(settings, *argv, "--input", '{"repo": "a/b", "pr": 1}')
    assert (code, out.strip()) == (0, workflow_id), err
    home = partition_for(workflow_id, settings.partitions)
    requests = settings.topic(REQUESTS.name)
    # only its partition moved (the topics were empty before: by exactly one record)
    assert changed(before, await log_ends(settings)) == {f"{requests}:{home}": 1}
