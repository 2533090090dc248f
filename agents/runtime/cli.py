"""``agentlog agent run`` and ``python -m agentlog.agents.runtime run``: run agent pools.

Register with ``agentlog.cli.COMMANDS`` by adding :func:`add_agent_command`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

# a module import, not `from agentlog.cli import …`: agentlog.cli may import this module
# while it is itself still initialising (when it registers add_agent_command)
import agentlog.cli as base

if TYPE_CHECKING:
    from agentlog.agents.runtime.runner import AgentRunner

#: Net allocations before a collection of the youngest generation (CPython's default: 700).
GC_GEN0_THRESHOLD = 10_000

_RUN_DESCRIPTION = """\
Run agents in this process until Ctrl-C or SIGTERM. TARGET is module:attribute
naming an Agent (Agent(kind=..., handler=...) or @agent(kind)) or a list of
them; the current directory is importable. Each agent kind joins the consumer
group <prefix>.agents.<kind> of the topic <prefix>.tasks.<kind> (created if
missing), runs up to --concurrency tasks at once and answers on
<prefix>.responses. Start more processes to spread a kind's partitions.

On Ctrl-C or SIGTERM the agents stop fetching, give running tasks --grace
seconds to finish, and hand back everything else uncommitted: the group
delivers those tasks again. A killed agent's unfinished tasks are delivered
again the same way; pass ctx.idempotency_key to side effects so a second run
changes nothing."""

_RUN_EXAMPLES = """\
  agentlog agent run agentlog.agents.demo:DEMO_AGENTS       # every demo agent kind
  agentlog agent run myagents:reviewer --concurrency 8
  agentlog agent run myagents:reviewer myagents:tester --kafka 127.0.0.1:9092
  python -m agentlog.agents.runtime run myagents:reviewer --topic-prefix team-a"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is too short; give a number of seconds above 0")
    return value


def add_run_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run`` (under ``agentlog agent`` or ``python -m agentlog.agents.runtime``)."""
    parser = base.add_command(
        subparsers,
        "run",
        help="run agents until Ctrl-C",
        description=_RUN_DESCRIPTION,
        examples=_RUN_EXAMPLES,
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="module:attribute")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="tasks each agent kind runs at once (default: each Agent's own)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long running tasks may finish on stop (default 30)",
    )
    parser.add_argument(
        "--heartbeat",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between AgentHeartbeat events (default 5)",
    )
    parser.add_argument(
        "--commit-interval",
        type=_positive_seconds,
        default=0.2,
        metavar="SECONDS",
        help="seconds between offset commits of answered tasks (default 0.2); a crash "
        "redelivers the tasks answered since the last one",
    )
    base.add_connection_options(parser)
    parser.add_argument(
        "--topic-prefix",
        metavar="PREFIX",
        help="topic and group prefix [AGENTLOG_TOPIC_PREFIX, default agentlog]",
    )
    parser.set_defaults(run=run_agents_command)


def add_agent_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``agentlog agent`` (with ``agentlog agent run``)."""
    parser = base.add_command(
        subparsers,
        "agent",
        help="run agent pools (the workers that handle tasks)",
        description="Agent processes: they handle the tasks workflow steps send to agent kinds.",
        examples=_RUN_EXAMPLES,
    )
    parser.set_defaults(run=lambda _args: _usage(parser))
    add_run_command(parser.add_subparsers(title="agent commands", metavar="COMMAND"))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return base.EXIT_USAGE


async def run_agents_command(args: argparse.Namespace) -> int:
    """Load the agents, run them until a signal, stop gracefully."""
    from agentlog.agents.runtime.runner import AgentRunner, load_agents

    settings = base.settings_from_args(args, topic_prefix=args.topic_prefix)
    base.configure_logging(settings.log_level)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: agents next to you are importable
    agents = load_agents(args.targets)
    runner = AgentRunner(
        agents,
        settings,
        concurrency=args.concurrency,
        shutdown_grace=args.grace,
        heartbeat_interval=args.heartbeat,
        commit_interval=args.commit_interval,
    )
    signals = base.StopSignals()
    with signals.installed():
        try:
            async with runner:
                for pool in runner.pools:
                    print(
                        f"agent {pool.kind}: {pool.agent_id}, concurrency {pool.concurrency}, "
                        f"topic {pool.topic}",
                        flush=True,
                    )
                print(f"ready: {len(runner.pools)} agent kind(s); press Ctrl-C to stop", flush=True)
                tune_gc()
                signals.mark_ready()
                await _until_signal_or_failure(runner, signals)
        except asyncio.CancelledError:
            if signals.received is None:
                raise
            print("interrupted while starting; everything is stopped", flush=True)
            return base.EXIT_INTERRUPTED
    print("agents stopped", flush=True)
    return base.EXIT_OK


def tune_gc() -> None:
    """Collect garbage less often in this agent process, and never what its startup built.

    A busy pool holds each fetched batch of tasks, and their answers, until the
    answers are acknowledged; with CPython's default threshold the collector
    runs hundreds of times per 10,000 tasks and rescans those live objects each
    time (about 7% of the process's CPU in ``tests.bench.agents``), while almost
    everything a task allocates is freed by reference counting long before
    :data:`GC_GEN0_THRESHOLD` net allocations. ``gc.freeze()`` moves the
    objects of startup (modules, the codec's programs) out of every later
    collection. Reference cycles are still collected, a little later. Only the
    command does this (it owns the process); an ``AgentPool`` in your own
    process leaves the collector alone. A disabled collector stays disabled.
    """
    if not gc.isenabled():
        return
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), gen1, gen2)
    gc.freeze()


async def _until_signal_or_failure(runner: AgentRunner, signals: base.StopSignals) -> None:
    failure = asyncio.create_task(runner.wait(), name="agents-wait")
    stop = asyncio.create_task(signals.wait(), name="agents-signal")
    try:
        await asyncio.wait([failure, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (failure, stop):
            task.cancel()
        await asyncio.gather(failure, stop, return_exceptions=True)
    if failure.done() and not failure.cancelled() and failure.exception() is not None:
        failure.result()  # raises AgentPoolError; leaving `async with` stops the rest


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m agentlog.agents.runtime``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentlog.agents.runtime",
        description="Run agentlog agents (the same as `agentlog agent`).",
        epilog=f"examples:\n{_RUN_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_command(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m agentlog.agents.runtime``; returns the exit code."""
    parser = build_parser()
    return base.run_parsed(parser, parser.parse_args(argv))
