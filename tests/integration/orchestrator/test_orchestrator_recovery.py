"""SIGKILL of the orchestrator process mid-run: a new one resumes every workflow."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentlog.agents.locks import LockManager
from agentlog.client import AgentlogClient
from agentlog.schemas.events import WorkflowSucceeded
from agentlog.settings import Settings
from agentlog.workflow import WorkflowStatus
from agentlog.workflow.demos import DEMOS
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import JournalTail, Responder, poll_until
from tests.integration.orchestrator.test_orchestrator_demos import EXPECTED


def start_orchestrator(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``python -m agentlog.agents.orchestrator`` for the test's topics, logging to ``log``."""
    assert settings.kafka_bootstrap is not None
    env = {
        **os.environ,
        "AGENTLOG_PARTITIONS": str(settings.partitions),
        "AGENTLOG_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentlog.agents.orchestrator",
                "--kafka",
                settings.kafka_bootstrap,
                "--topic-prefix",
                settings.topic_prefix,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    await poll_until(lambda: process.poll() is not None, seconds=30)
    return process.returncode


@pytest.mark.timeout(180)
async def test_sigkill_mid_run_then_a_new_orchestrator_completes_every_workflow(
    settings: Settings, tail: JournalTail, tmp_path: Path
) -> None:
    log = tmp_path / "orchestrator.log"
    first = start_orchestrator(settings, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with (
            LockManager(settings),  # the 8 pr-deploys hold one repo lock around deploy
            Responder(settings, DEMO_KINDS, delay=0.15) as agents,
            AgentlogClient(settings) as client,
        ):
            ids = {
                await client.submit(spec.name, spec.example_input): spec.name
                for spec in DEMOS
                for _ in range(8)
            }
            # kill it once some workflows are done and others are mid-way
            await tail.until(
                lambda t: sum(isinstance(e, WorkflowSucceeded) for e in t.events) >= 5,
                seconds=60,
            )
            assert await stop_process(first, signal.SIGKILL) == -signal.SIGKILL
            killed_at = time.monotonic()
            done_before = sum(isinstance(e, WorkflowSucceeded) for e in tail.events)
            assert done_before < len(ids), "every workflow finished before the kill"

            second = start_orchestrator(settings, log)
            states = await tail.terminal(ids, seconds=120)
            print(
                f"{done_before}/{len(ids)} done at the kill; the rest completed "
                f"{time.monotonic() - killed_at:.1f} s after it"
            )
            assert await stop_process(second, signal.SIGTERM) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    for workflow_id, name in ids.items():
        assert states[workflow_id].status is WorkflowStatus.SUCCEEDED, states[workflow_id].error
        assert states[workflow_id].output == EXPECTED[name]
    counts = collections.Counter(tail.scheduled_task_ids())
    assert [task for task, n in counts.items() if n > 1] == []
    assert "recovered partitions" in log.read_text()
    assert agents.tasks  # the agents saw the work; re-published duplicates are dropped by them
