"""``agentlog dev``: which port the query API gets, and which setting an error names."""

from __future__ import annotations

from agentlog.cli import ApiPort, _api_port, build_parser
from agentlog.settings import DEFAULT_API_PORT, Settings


def test_the_flag_wins_then_the_variable_then_the_default_with_a_fallback() -> None:
    env = Settings.from_env({"AGENTLOG_API_PORT": "9001"})
    assert _api_port(env, 9002) == ApiPort(9002, "--api-port")
    assert _api_port(env, None) == ApiPort(9001, "AGENTLOG_API_PORT")
    assert _api_port(Settings(), None) == ApiPort(DEFAULT_API_PORT, fallback=True)


def test_dev_takes_api_port_and_projection_commands_take_schema() -> None:
    parser = build_parser()
    assert parser.parse_args(["dev", "--api-port", "8000"]).api_port == 8000
    args = parser.parse_args(["projector", "run", "--schema", "x", "--alive-file", "/tmp/a"])
    assert (args.schema, str(args.alive_file), args.batch_size) == ("x", "/tmp/a", 10_000)
