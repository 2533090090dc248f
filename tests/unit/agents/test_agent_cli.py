"""The ``agent`` command's parser, registered the way agentlog.cli registers commands."""

from __future__ import annotations

import argparse
import gc

import pytest

from agentlog.agents.runtime.cli import (
    GC_GEN0_THRESHOLD,
    add_agent_command,
    build_parser,
    run_agents_command,
    tune_gc,
)


def agentlog_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentlog")
    add_agent_command(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return parser


def test_agent_run_parses_targets_and_options() -> None:
    args = agentlog_parser().parse_args(
        [
            "agent",
            "run",
            "a:b",
            "c:d",
            "--concurrency",
            "4",
            "--grace",
            "2.5",
            "--topic-prefix",
            "x",
        ]
    )
    assert args.targets == ["a:b", "c:d"]
    assert (args.concurrency, args.grace, args.heartbeat, args.topic_prefix) == (4, 2.5, 5.0, "x")
    assert args.run is run_agents_command


def test_agent_without_a_subcommand_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = agentlog_parser().parse_args(["agent"])
    assert args.run(args) == 2
    assert "agent run" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--concurrency", "0"], ["--grace", "soon"]])
def test_bad_numbers_are_usage_errors(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "a:b", *bad])
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_the_agent_process_collects_less_often_unless_collection_is_off() -> None:
    threshold = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        gc.set_threshold(50_000, 10, 10)
        tune_gc()
        assert gc.get_threshold() == (50_000, 10, 10), "a higher threshold is kept"
        gc.unfreeze()
        gc.disable()
        tune_gc()
        assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*threshold)
