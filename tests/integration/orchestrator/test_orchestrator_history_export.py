"""Record a real run with ``agentlog history --export`` and replay it with ``agentlog verify``.

The orchestrator, the lock manager and the test's agents run on a real broker;
the exported history must hold every input that decided something (the
request, the answers, the lock grant copied to ``responses``, the retry timer)
and replay through the current core with exactly the recorded decisions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agentlog.agents.locks import LockManager
from agentlog.agents.orchestrator import Orchestrator, partition_for
from agentlog.agents.orchestrator.history_file import read_history
from agentlog.agents.orchestrator.replay import verify_history
from agentlog.agents.orchestrator.replay_cli import REPLAY_COMMANDS
from agentlog.cli import main
from agentlog.client import AgentlogClient
from agentlog.schemas.events import LockGranted, TaskCompleted, TaskFailed, TaskRequested
from agentlog.settings import Settings
from agentlog.workflow import TimerFired, WorkflowStatus
from agentlog.workflow.demos import PR_DEPLOY, TRIAGE_CHAIN, demo_registry
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import (
    Fail,
    JournalTail,
    Reply,
    Responder,
    demo_behaviour,
)


def parse(settings: Settings, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentlog")
    commands = parser.add_subparsers()
    for register in REPLAY_COMMANDS:
        register(commands)
    assert settings.kafka_bootstrap is not None
    connection = ["--kafka", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    return parser.parse_args([*argv, *connection])


def flaky_tests(task: TaskRequested) -> Reply:
    """The demo agents, except that the first test run fails (retryable): a retry timer fires."""
    if task.step == "tests" and task.attempt == 1:
        return Fail("agent_error", retryable=True, message="test runner lost")
    return demo_behaviour(task)


@pytest.mark.timeout(120)
async def test_an_exported_run_verifies(
    settings: Settings, tail: JournalTail, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        LockManager(settings),
        Responder(settings, DEMO_KINDS, flaky_tests),
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        deploy = await client.submit(PR_DEPLOY.name, PR_DEPLOY.example_input)
        first = await client.submit(
            TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input, idempotency_key="ticket-1"
        )
        # another id on the same partition reusing the key: rejected as a duplicate there
        home = partition_for(first, settings.partitions)
        duplicate = next(
            f"dup-{n}"
            for n in range(1000)
            if partition_for(f"dup-{n}", settings.partitions) == home
        )
        states = await tail.terminal([deploy, first], seconds=60)
        assert {s.status for s in states.values()} == {WorkflowStatus.SUCCEEDED}
        await client.submit(
            TRIAGE_CHAIN.name,
            TRIAGE_CHAIN.example_input,
            idempotency_key="ticket-1",
            workflow_id=duplicate,
        )
        rejected = await tail.terminal([duplicate], seconds=30)
        assert rejected[duplicate].status is WorkflowStatus.REJECTED

    path = tmp_path / "deploy.avro"
    args = parse(settings, "history", deploy, "--export", str(path), "--json")
    assert await args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["workflow_id"] == deploy
    assert summary["decisions"] == len(tail.of(deploy))

    history = read_history(path)
    assert history.journal == tail.of(deploy)
    kinds = [type(entry.input) for entry in history.entries]
    assert TaskFailed in kinds
    assert LockGranted in kinds  # the lock manager's copy on responses
    assert TaskCompleted in kinds
    timers = [e.input for e in history.entries if isinstance(e.input, TimerFired)]
    assert [t.timer_id for t in timers] == [f"retry:{deploy}/tests/1/0/1"]
    assert verify_history(history, demo_registry()).ok

    dup_path = tmp_path / "duplicate.avro"
    args = parse(settings, "history", duplicate, "--export", str(dup_path))
    assert await args.run(args) == 0
    assert f"-> {dup_path}" in capsys.readouterr().out
    (entry,) = read_history(dup_path).entries
    assert entry.idempotency_keys == {"ticket-1": first}  # the claim, from the journal

    assert main(["verify", str(path), str(dup_path)]) == 0
    assert "2 histories: 2 ok, 0 diverged" in capsys.readouterr().out

    args = parse(settings, "history", deploy)
    assert await args.run(args) == 0
    timeline = capsys.readouterr().out
    assert timeline.startswith(f"workflow {deploy}  pr-deploy v1")
    assert "timer retry:" in timeline
    assert "LockAcquired" in timeline

    args = parse(settings, "history", "never-submitted", "--export", str(tmp_path / "x.avro"))
    assert await args.run(args) == 1
    assert "no decision for workflow 'never-submitted'" in capsys.readouterr().err
    assert not (tmp_path / "x.avro").exists()
