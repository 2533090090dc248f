"""``python -m agentlog.projections projector run|rebuild|api …``, without ``agentlog``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agentlog.cli import run_parsed
from agentlog.projections.cli import add_api_command, add_projector_command, add_rebuild_command


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one of the projection commands; exit codes as ``agentlog``'s."""
    parser = argparse.ArgumentParser(prog="python -m agentlog.projections")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in (add_projector_command, add_rebuild_command, add_api_command):
        register(commands)
    return run_parsed(parser, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
