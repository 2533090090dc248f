"""``agentlog locks run|show`` and ``python -m agentlog.agents.locks``.

Register with :mod:`agentlog.cli`: :func:`add_locks_command`. This module
imports only :mod:`agentlog.cli`, the orchestrator's CLI helpers and the
standard library; the runner and the client are imported by the handlers,
which keeps ``agentlog --help`` fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import agentlog.cli as base
from agentlog.agents.orchestrator.cli import add_topic_prefix_option, settings_with_prefix
from agentlog.errors import ConfigError

if TYPE_CHECKING:
    from agentlog.agents.locks.state import LockState

_RUN_DESCRIPTION = """\
Run one lock manager until SIGINT or SIGTERM. It joins the consumer group
<prefix>.locks on the locks topic and is the single writer of every resource
whose partition it owns: it rebuilds their state by folding the partition
(fencing tokens continue from the last one granted), then grants, queues,
denies, renews, releases and expires leases, appending each decision before
it commits the request.

Run more of them to spread the partitions: each partition has exactly one
owner, and a new owner resumes every lock of it from the log."""

_RUN_EXAMPLES = """\
  agentlog locks run --kafka 127.0.0.1:9092
  AGENTLOG_TOPIC_PREFIX=team-a agentlog locks run
  python -m agentlog.agents.locks --kafka 127.0.0.1:9092 --topic-prefix test"""

_SHOW_DESCRIPTION = """\
Show a lock as the lock manager last decided it: the holder with its fencing
token and lease expiry, the queue of waiters and the last token granted. Reads
the resource's partition of the locks topic from the start (no database)."""

_SHOW_EXAMPLES = """\
  agentlog locks show repo:acme/shop
  agentlog locks show repo:acme/shop --json"""


def add_locks_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``agentlog locks run`` and ``agentlog locks show``."""
    parser = base.add_command(
        subparsers,
        "locks",
        help="run the lock manager, inspect locks",
        description="Event-sourced locks: see `agentlog locks run --help` and "
        "`agentlog locks show --help`.",
        examples="  agentlog locks run\n  agentlog locks show repo:acme/shop",
    )
    parser.set_defaults(run=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = base.add_command(
        commands,
        "run",
        help="run one lock manager until Ctrl-C / SIGTERM",
        description=_RUN_DESCRIPTION,
        examples=_RUN_EXAMPLES,
    )
    add_run_arguments(run)
    run.set_defaults(run=run_lock_manager)
    show = base.add_command(
        commands,
        "show",
        help="show a lock's holder, queue and last fencing token",
        description=_SHOW_DESCRIPTION,
        examples=_SHOW_EXAMPLES,
    )
    show.add_argument("resource", help="the locked resource, e.g. repo:acme/shop")
    show.add_argument("--json", action="store_true", help="print JSON")
    base.add_connection_options(show)
    add_topic_prefix_option(show)
    show.set_defaults(run=show_lock)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``locks run`` (shared with the module entry point)."""
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    group = parser.add_argument_group("lock manager")
    group.add_argument("--group", metavar="ID", help="consumer group [<prefix>.locks]")


async def run_lock_manager(args: argparse.Namespace) -> int:
    """Run one lock manager until a signal; exit 1 if it fails."""
    from .runner import LockManager, LockManagerConfig

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    signals = base.StopSignals()
    with signals.installed():
        try:
            config = LockManagerConfig(group_id=args.group)
            async with LockManager(settings, config=config) as manager:
                signals.mark_ready()
                stop = asyncio.ensure_future(signals.wait())
                ended = asyncio.ensure_future(manager.wait())
                await asyncio.wait([stop, ended], return_when=asyncio.FIRST_COMPLETED)
                for waiter in (stop, ended):
                    waiter.cancel()
                await asyncio.wait([stop, ended])
        except asyncio.CancelledError:
            if signals.received is None:
                raise
            return base.EXIT_INTERRUPTED
    return base.EXIT_OK


async def show_lock(args: argparse.Namespace) -> int:
    """Print a lock's state folded from its partition."""
    from .client import LockClient

    settings = settings_with_prefix(args)
    base.configure_logging(settings.log_level)
    if not args.resource.strip():
        raise ConfigError(
            "resource", args.resource, "is empty", "Name a resource, e.g. repo:org/x."
        )
    async with LockClient(settings, source="cli") as client:
        state = await client.state(args.resource)
    if args.json:
        print(json.dumps(state_json(args.resource, state), indent=2))
    else:
        print(describe(args.resource, state))
    return base.EXIT_OK


def state_json(resource: str, state: LockState | None) -> dict[str, Any]:
    """A lock's state as JSON (what ``locks show --json`` prints)."""
    holder = state.holder if state is not None else None
    return {
        "resource": resource,
        "locked": holder is not None,
        "holder": None
        if holder is None
        else {
            "request_id": holder.request_id,
            "requester": holder.requester,
            "fencing_token": holder.token,
            "granted_at": _iso(holder.granted_at),
            "lease_expires_at": _iso(holder.expires_at),
        },
        "queue": [
            {
                "position": i,
                "request_id": w.request_id,
                "requester": w.requester,
                "queued_at": _iso(w.queued_at),
                "wait_deadline": _iso(w.deadline),
            }
            for i, w in enumerate(state.queue if state is not None else (), 1)
        ],
        "last_token": state.last_token if state is not None else 0,
        "undecided_requests": len(state.pending) if state is not None else 0,
    }


def describe(resource: str, state: LockState | None) -> str:
    """A lock's state for people (what ``locks show`` prints)."""
    if state is None:
        return f"{resource}: never requested"
    lines = [f"resource    {resource}"]
    holder = state.holder
    if holder is None:
        lines.append("holder      none (free)")
    else:
        lines.append(
            f"holder      {holder.requester} (request {holder.request_id}), token {holder.token}, "
            f"granted {_iso(holder.granted_at)}, lease until {_iso(holder.expires_at)}"
        )
    lines.append(f"queue       {len(state.queue)} waiting")
    lines.extend(
        f"  {i}. {w.requester} (request {w.request_id}) waits until {_iso(w.deadline)}"
        for i, w in enumerate(state.queue, 1)
    )
    lines.append(f"last token  {state.last_token}")
    if state.pending:
        lines.append(f"undecided   {len(state.pending)} request(s) (is the lock manager running?)")
    return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return base.EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentlog.agents.locks``: the same as ``agentlog locks run``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentlog.agents.locks",
        description=_RUN_DESCRIPTION,
        epilog=f"examples:\n{_RUN_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.set_defaults(run=run_lock_manager)
    return base.run_parsed(parser, parser.parse_args(argv))
