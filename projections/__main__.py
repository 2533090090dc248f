"""``python -m agentlog.projections projector run|rebuild|api …``, without ``agentlog``."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Sequence

from agentlog.errors import AgentlogError, ConfigError
from agentlog.projections.cli import add_api_command, add_projector_command, add_rebuild_command


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one of the projection commands; exit codes as ``agentlog``'s."""
    parser = argparse.ArgumentParser(prog="python -m agentlog.projections")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in (add_projector_command, add_rebuild_command, add_api_command):
        register(commands)
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        result = asyncio.run(run(args)) if inspect.iscoroutinefunction(run) else run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AgentlogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result)


if __name__ == "__main__":
    raise SystemExit(main())
