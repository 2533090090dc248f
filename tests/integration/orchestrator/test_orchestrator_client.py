"""The Python client and the client commands, against a running orchestrator."""

from __future__ import annotations

import argparse
import contextlib
import json

import pytest

from agentlog.agents.locks import LockManager
from agentlog.agents.orchestrator import Orchestrator
from agentlog.client import AgentlogClient, RequestError, WaitTimeoutError, derive_workflow_id
from agentlog.client_cli import CLIENT_COMMANDS
from agentlog.errors import ConfigError
from agentlog.schemas.events import WorkflowStarted, WorkflowSucceeded
from agentlog.settings import Settings
from agentlog.workflow import WorkflowStatus
from agentlog.workflow.demos import PR_DEPLOY, TRIAGE_CHAIN, demo_registry
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import JournalTail, Responder


def parse(settings: Settings, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentlog")
    commands = parser.add_subparsers()
    for register in CLIENT_COMMANDS:
        register(commands)
    assert settings.kafka_bootstrap is not None
    connection = ["--kafka", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    return parser.parse_args([*argv, *connection])


@pytest.mark.timeout(90)
async def test_submit_wait_status_watch_and_idempotency(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS),
        AgentlogClient(settings) as client,
    ):
        await orchestrator.wait_ready()
        with pytest.raises(RequestError, match="priority"):
            await client.submit("triage-chain", {}, priority=9)
        with pytest.raises(RequestError, match="either a definition"):
            await client.submit(None, {})
        with pytest.raises(RequestError, match="input is not JSON"):
            await client.submit("triage-chain", {"when": object()})

        first = await client.submit(
            TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input, idempotency_key="ticket-T-1042"
        )
        again = await client.submit(
            TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input, idempotency_key="ticket-T-1042"
        )
        assert first == again == derive_workflow_id("ticket-T-1042")
        state = await client.wait(first, timeout=30)
        assert state.status is WorkflowStatus.SUCCEEDED
        assert await client.status(first) == state
        assert await client.status("never-submitted") is None

        seen = []
        async with contextlib.aclosing(client.watch(first)) as events:
            async for event in events:
                seen.append(type(event).__name__)
                if isinstance(event, WorkflowSucceeded):
                    break
        assert seen[0] == "WorkflowStarted"
        assert seen.count("StepCompleted") == 3

        with pytest.raises(WaitTimeoutError, match="did not end within"):
            await client.wait("nobody-submitted-this", timeout=0.5)

        # many at once, one reader: the ended states of all, or a timeout naming what is left
        many = [
            await client.submit(TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input) for _ in range(8)
        ]
        ended = await client.wait_all([*many, first], timeout=30)
        assert set(ended) == {*many, first}
        assert all(s.status is WorkflowStatus.SUCCEEDED for s in ended.values())
        assert ended[first] == state
        with pytest.raises(WaitTimeoutError, match=r"1 of 2 workflows did not end .*never-sent"):
            await client.wait_all([first, "never-sent"], timeout=1)

    started = [e for e in tail.of(first) if isinstance(e, WorkflowStarted)]
    assert len(started) == 1  # the second submit was a duplicate request


@pytest.mark.timeout(90)
async def test_the_client_commands_print_json(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        LockManager(settings),  # pr-deploy holds a repo lock around deploy
        Responder(settings, DEMO_KINDS),
    ):
        await orchestrator.wait_ready()
        args = parse(settings, "submit", "pr-deploy", "--wait", "30", "--json", "--label", "a=b")
        assert await args.run(args) == 0
        state = json.loads(capsys.readouterr().out)
        assert state["status"] == "succeeded"
        assert state["input"] == PR_DEPLOY.example_input  # the example input by default
        assert state["labels"] == {"a": "b"}
        assert state["steps"]["deploy"]["status"] == "completed"
        workflow_id = state["workflow_id"]

        args = parse(settings, "status", workflow_id, "--json")
        assert await args.run(args) == 0
        assert json.loads(capsys.readouterr().out) == state

        args = parse(settings, "watch", workflow_id, "--json")
        assert await args.run(args) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[0]["type"] == "WorkflowStarted"
        assert lines[-1]["type"] == "WorkflowSucceeded"
        assert lines[-1]["output"] == state["output"]

        args = parse(settings, "status", workflow_id)
        assert await args.run(args) == 0
        text = capsys.readouterr().out
        assert "succeeded" in text
        assert "deploy" in text

        args = parse(settings, "submit", "pr-deploy", "--input", "{not json")
        with pytest.raises(ConfigError, match="--input"):
            await args.run(args)

        args = parse(settings, "status", "no-such-workflow")
        assert await args.run(args) == 1
        assert "no decision" in capsys.readouterr().err

        # sent, but the orchestrator will ignore them: said on stderr
        args = parse(settings, "signal", "no-such-workflow", "approve")
        assert await args.run(args) == 0
        assert "no-such-workflow has no journal" in capsys.readouterr().err
        args = parse(settings, "cancel", workflow_id)  # ended, but known: no warning
        assert await args.run(args) == 0
        assert "warning" not in capsys.readouterr().err
        args = parse(settings, "submit", "no-such-definition")
        assert await args.run(args) == 0
        assert "is not one this command knows" in capsys.readouterr().err

    args = argparse.ArgumentParser()
    commands = args.add_subparsers()
    for register in CLIENT_COMMANDS:
        register(commands)
    listing = args.parse_args(["definitions", "--json"])
    assert listing.run(listing) == 0
    names = [d["name"] for d in json.loads(capsys.readouterr().out)]
    assert names == ["parallel-docs", "pr-deploy", "self-healing", "supervisor", "triage-chain"]
