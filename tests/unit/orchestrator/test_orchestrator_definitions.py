"""The orchestrator's registry sources and command-line parsing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agentlog.agents.orchestrator import build_registry, load_definitions
from agentlog.agents.orchestrator.cli import (
    add_orchestrator_command,
    run_orchestrator,
    settings_with_prefix,
)
from agentlog.errors import ConfigError
from agentlog.workflow import WorkflowSpec, workflow
from agentlog.workflow.demos import DEMOS, TRIAGE_CHAIN

EXTRA = workflow("extra", version=2).step("only", agent="writer").build()
#: For ``module:attr`` sources.
EXTRAS = [EXTRA]


def make_extras() -> WorkflowSpec:
    return EXTRA


def test_the_default_registry_holds_the_demos() -> None:
    registry = build_registry()
    assert sorted(registry.names()) == sorted(spec.name for spec in DEMOS)
    assert len(build_registry(demos=False)) == 0


@pytest.mark.parametrize(
    "shape",
    [
        lambda s: s,
        lambda s: [s],
        lambda s: {"definitions": [s]},
    ],
)
def test_json_files_hold_one_spec_a_list_or_definitions(tmp_path: Path, shape: object) -> None:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(shape(EXTRA.to_json())))  # type: ignore[operator]
    assert load_definitions(str(path)) == [EXTRA]
    registry = build_registry([str(path)])
    assert registry.get("extra") == EXTRA
    assert "triage-chain" in registry


@pytest.mark.parametrize("attr", ["EXTRAS", "make_extras", "EXTRA"])
def test_module_attr_sources(attr: str) -> None:
    source = f"{__name__}:{attr}"
    assert load_definitions(source) == [EXTRA]


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("no/such/file.json", "cannot read"),
        ("no.such.module:X", "cannot import"),
        (f"{__name__}:NOPE", "no attribute"),
        (f"{__name__}:PARTITION_FREE", "not a WorkflowSpec"),
        ("just-a-word", "neither a JSON file"),
    ],
)
def test_bad_sources_name_the_flag_and_the_problem(source: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        load_definitions(source)
    assert info.value.setting == "--definitions"


PARTITION_FREE = 42


def test_an_invalid_or_conflicting_spec_in_a_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "version": 1, "steps": [{"name": "a", "afer": []}]}))
    with pytest.raises(ConfigError, match="afer"):
        build_registry([str(bad)])
    clash = tmp_path / "clash.json"
    changed = TRIAGE_CHAIN.to_json()
    assert isinstance(changed, dict)
    changed["description"] = "same name and version, other content"
    clash.write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match="already registered"):
        build_registry([str(clash)])


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentlog")
    add_orchestrator_command(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_orchestrator_run_parses_its_options() -> None:
    args = parse(
        "orchestrator", "run", "--kafka", "127.0.0.1:9092", "--topic-prefix", "team-a",
        "--definitions", "a.json", "--definitions", "pkg:X", "--no-demos",
        "--breaker-threshold", "0",
    )  # fmt: skip
    assert args.run is run_orchestrator
    assert args.definitions == ["a.json", "pkg:X"]
    assert args.no_demos
    settings = settings_with_prefix(args)
    assert settings.topic("requests") == "team-a.requests"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"


def test_a_bad_topic_prefix_names_the_flag() -> None:
    args = parse("orchestrator", "run", "--topic-prefix", "no spaces")
    with pytest.raises(ConfigError) as info:
        settings_with_prefix(args)
    assert info.value.setting == "--topic-prefix"


async def test_bad_breaker_options_are_refused_before_connecting() -> None:
    args = parse("orchestrator", "run", "--kafka", "127.0.0.1:1", "--breaker-threshold", "-1")
    with pytest.raises(ConfigError, match="threshold"):
        await run_orchestrator(args)


def test_orchestrator_alone_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("orchestrator")
    assert args.run(args) == 2
    assert "orchestrator run" in capsys.readouterr().err
