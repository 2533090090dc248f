"""``agentlog orchestrator run`` and ``python -m agentlog.agents.orchestrator``.

Register with ``COMMANDS`` in :mod:`agentlog.cli`: :func:`add_orchestrator_command`.
This module imports only :mod:`agentlog.cli` (as a module, so either may be
imported first) and the standard library; the runner is imported by the
handler, which keeps ``agentlog --help`` fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import agentlog.cli as base
from agentlog.errors import ConfigError
from agentlog.settings import Settings

_DESCRIPTION = """\
Run one orchestrator until SIGINT or SIGTERM. It joins the consumer group
<prefix>.orchestrator on the requests and responses topics, recovers the
workflows of the partitions it gets from the journal, and then decides: it
appends decisions to the journal, publishes tasks to tasks.<agent-kind> and
fires step and workflow timeouts and retries.

Run more of them to spread the partitions: each partition has exactly one
owner, and a new owner resumes every workflow of it from the journal.

Definitions: the five demos (unless --no-demos) plus every --definitions
source, a JSON file of specs or module:attr. Requests may also carry an
inline spec."""

_EXAMPLES = """\
  agentlog orchestrator run --kafka 127.0.0.1:9092
  agentlog orchestrator run --definitions flows.json --definitions myapp.flows:ALL
  AGENTLOG_TOPIC_PREFIX=team-a agentlog orchestrator run
  python -m agentlog.agents.orchestrator --kafka 127.0.0.1:9092 --topic-prefix test"""


def add_orchestrator_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``agentlog orchestrator run``."""
    parser = base.add_command(
        subparsers,
        "orchestrator",
        help="run the workflow orchestrator",
        description="The workflow orchestrator: `agentlog orchestrator run --help`.",
        examples="  agentlog orchestrator run",
    )
    parser.set_defaults(run=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = base.add_command(
        commands,
        "run",
        help="run one orchestrator until Ctrl-C / SIGTERM",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
    )
    add_run_arguments(run)
    run.set_defaults(run=run_orchestrator)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``orchestrator run`` (shared with the module entry point)."""
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    group = parser.add_argument_group("orchestrator")
    group.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="SOURCE",
        help="more workflow definitions: a JSON file of specs or module:attr (repeatable)",
    )
    group.add_argument(
        "--no-demos", action="store_true", help="do not register the five demo workflows"
    )
    group.add_argument("--group", metavar="ID", help="consumer group [<prefix>.orchestrator]")
    group.add_argument(
        "--breaker-threshold",
        type=int,
        default=5,
        metavar="N",
        help="consecutive failures that open an agent kind's circuit breaker; 0 disables "
        "(default 5)",
    )
    group.add_argument(
        "--breaker-cooldown",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long an open breaker holds tasks before a probe (default 30)",
    )


def add_topic_prefix_option(parser: argparse.ArgumentParser) -> None:
    """``--topic-prefix`` (overrides AGENTLOG_TOPIC_PREFIX)."""
    parser.add_argument(
        "--topic-prefix",
        metavar="P",
        help="prefix of every topic name [AGENTLOG_TOPIC_PREFIX, default agentlog]",
    )


def settings_with_prefix(args: argparse.Namespace) -> Settings:
    """Settings from the environment and flags, ``--topic-prefix`` included."""
    prefix = getattr(args, "topic_prefix", None)
    try:
        return base.settings_from_args(args, topic_prefix=prefix)
    except ConfigError as e:
        if e.setting == "AGENTLOG_TOPIC_PREFIX" and prefix is not None:
            raise ConfigError("--topic-prefix", e.value, e.problem, e.fix) from None
        raise


async def run_orchestrator(args: argparse.Namespace) -> int:
    """Run one orchestrator until a signal; exit 1 if it fails."""
    from .definitions import build_registry
    from .runner import Orchestrator, OrchestratorConfig

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    if args.breaker_threshold < 0 or args.breaker_cooldown <= 0:
        raise ConfigError(
            "--breaker-threshold/--breaker-cooldown",
            (args.breaker_threshold, args.breaker_cooldown),
            "the threshold must be 0 or more and the cooldown more than 0 seconds",
            "Use e.g. --breaker-threshold 5 --breaker-cooldown 30.",
        )
    registry = build_registry(
        args.definitions,
        demos=not args.no_demos,
        default_timeout_ms=settings.default_workflow_timeout_ms,
    )
    config = OrchestratorConfig(
        group_id=args.group,
        breaker_threshold=args.breaker_threshold,
        breaker_cooldown_ms=int(args.breaker_cooldown * 1000),
    )
    signals = base.StopSignals()
    with signals.installed():
        try:
            async with Orchestrator(settings, registry, config=config) as orchestrator:
                signals.mark_ready()
                stop = asyncio.ensure_future(signals.wait())
                ended = asyncio.ensure_future(orchestrator.wait())
                await asyncio.wait([stop, ended], return_when=asyncio.FIRST_COMPLETED)
                for waiter in (stop, ended):
                    waiter.cancel()
                await asyncio.wait([stop, ended])
        except asyncio.CancelledError:
            if signals.received is None:
                raise
            return base.EXIT_INTERRUPTED
    return base.EXIT_OK


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return base.EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentlog.agents.orchestrator``: the same as ``agentlog orchestrator run``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentlog.agents.orchestrator",
        description=_DESCRIPTION,
        epilog=f"examples:\n{_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.set_defaults(run=run_orchestrator)
    return base.run_parsed(parser, parser.parse_args(argv))
