"""Commands: ``agentlog projector run``, ``agentlog rebuild <projection>``, ``agentlog api``.

Register them by adding :func:`add_projector_command`, :func:`add_rebuild_command`
and :func:`add_api_command` to ``agentlog.cli.registered_commands``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import agentlog.cli as base
from agentlog.agents.orchestrator.cli import add_topic_prefix_option
from agentlog.errors import AgentlogError, ConfigError

if TYPE_CHECKING:
    from agentlog.projections.config import ProjectionSettings
    from agentlog.projections.runner import ProjectorConfig
    from agentlog.settings import Settings

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# -- agentlog projector run ---------------------------------------------------------------

_PROJECTOR_DESCRIPTION = """\
Fold every agentlog topic into the PostgreSQL read models (workflows, steps,
the event archive, locks, agents, dead letters, metrics) and keep them current.

Each batch is one transaction holding the rows and the consumed offsets, so a
crash or a redelivery never changes the result; on start the projector seeks
to the offsets stored in PostgreSQL (no consumer group). Migrations run at
start. While PostgreSQL is down the projector waits and retries, losing
nothing. Scale out with --workers (processes on this machine) or with
--partitions (disjoint partition numbers per machine)."""

_PROJECTOR_EXAMPLES = """\
  agentlog projector run
  agentlog projector run --workers 4
  agentlog projector run --partitions 0,1,2 --schema agentlog
  AGENTLOG_PROJECTION_SCHEMA=staging agentlog projector run --batch-size 2000"""


def add_projector_command(subparsers: Subparsers) -> None:
    """Register ``agentlog projector run``."""
    parser = base.add_command(
        subparsers,
        "projector",
        help="run the projector that keeps the PostgreSQL read models current",
        description="The projector: `agentlog projector run --help`.",
        examples="  agentlog projector run",
    )
    parser.set_defaults(run=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = base.add_command(
        commands,
        "run",
        help="project until Ctrl-C / SIGTERM",
        description=_PROJECTOR_DESCRIPTION,
        examples=_PROJECTOR_EXAMPLES,
    )
    base.add_connection_options(run)
    add_topic_prefix_option(run)
    _add_schema_option(run)
    group = run.add_argument_group("projector")
    group.add_argument(
        "--batch-size",
        type=_positive,
        default=10_000,
        metavar="N",
        help="records per transaction at most (default 10000)",
    )
    group.add_argument(
        "--partitions",
        type=_partitions,
        metavar="LIST",
        help="only these partition numbers of every topic, e.g. 0,1,2 (default all)",
    )
    group.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="processes, each owning partition numbers p with p %% N == its index (default 1)",
    )
    group.add_argument(
        "--alive-file",
        type=Path,
        metavar="PATH",
        help="touch PATH every few seconds while projecting (for container health checks)",
    )
    run.set_defaults(run=run_projector)


async def run_projector(args: argparse.Namespace) -> int:
    """Run the projector (or ``--workers`` of them) until a signal; exit 1 if one fails."""
    from agentlog.projections.runner import ProjectorConfig

    settings, projection = _settings(args)
    base.configure_logging(settings.log_level)
    config = ProjectorConfig(
        schema=projection.schema,
        batch_size=args.batch_size,
        partitions=args.partitions,
        alive_file=args.alive_file,
        gc_threshold=settings.gc_threshold or None,
    )
    if args.workers > 1:
        return await _run_workers(settings, config, args.workers)
    return await _project(settings, config)


async def _project(settings: Settings, config: ProjectorConfig) -> int:
    from agentlog.projections.runner import Projector

    signals = base.StopSignals()
    with signals.installed():
        try:
            async with Projector(settings, config) as projector:
                signals.mark_ready()
                stop = asyncio.ensure_future(signals.wait())
                ended = asyncio.ensure_future(projector.wait())
                await asyncio.wait([stop, ended], return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if ended.done():
                    ended.result()  # raises the projector's failure
                ended.cancel()
                await asyncio.wait([stop, ended])
        except asyncio.CancelledError:
            if signals.received is None:
                raise
            return base.EXIT_INTERRUPTED
    return base.EXIT_OK


def _worker_main(settings: Settings, config: ProjectorConfig) -> None:
    base.configure_logging(settings.log_level)
    try:
        code = asyncio.run(_project(settings, config))
    except AgentlogError as e:
        print(f"error: worker {config.worker}: {e}", file=sys.stderr)
        code = base.EXIT_FAILURE
    raise SystemExit(code)


async def _run_workers(settings: Settings, config: ProjectorConfig, count: int) -> int:
    """``count`` projector processes; when one ends, the others are stopped."""
    import dataclasses

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker_main,
            args=(settings, dataclasses.replace(config, worker=(index, count))),
            name=f"agentlog-projector-{index}",
        )
        for index in range(count)
    ]
    for process in processes:
        process.start()
    signals = base.StopSignals()
    with signals.installed():
        signals.mark_ready()
        print(f"agentlog projector: {count} workers running; Ctrl-C stops them", flush=True)
        stop = asyncio.ensure_future(signals.wait())
        try:
            while not stop.done() and all(p.is_alive() for p in processes):  # noqa: ASYNC110
                await asyncio.sleep(0.2)  # child processes have no awaitable exit
        finally:
            stop.cancel()
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    process.terminate()  # SIGTERM: a clean stop in the worker
            for process in processes:
                await asyncio.to_thread(process.join, 15)
    failed = [p.name for p in processes if p.exitcode not in (0, -15, base.EXIT_INTERRUPTED)]
    if failed and signals.received is None:
        print(f"error: projector workers failed: {', '.join(failed)}", file=sys.stderr)
        return base.EXIT_FAILURE
    return base.EXIT_OK


# -- agentlog rebuild ----------------------------------------------------------------------

_REBUILD_DESCRIPTION = """\
Rebuild a projection from offset zero of every topic into a shadow schema
(<schema>_shadow), compare it with the live one table by table (row count and
an order-independent hash of the rows), and swap it in.

The live projector keeps running; for the final comparison it pauses at its
next batch while the shadow catches up to exactly its offsets. The swap is one
transaction: readers see the old rows or the new ones, never an error. Use
--dry-run to compare only (exit 3 when they differ)."""

_REBUILD_EXAMPLES = """\
  agentlog rebuild workflows
  agentlog rebuild all --dry-run
  agentlog rebuild metrics --schema agentlog --shadow agentlog_new --keep-shadow"""

EXIT_DIFFERS = 3


def add_rebuild_command(subparsers: Subparsers) -> None:
    """Register ``agentlog rebuild <projection>``."""
    from agentlog.projections.tables import PROJECTIONS

    parser = base.add_command(
        subparsers,
        "rebuild",
        help="rebuild a projection from the topics, compare it with the live one, swap it in",
        description=_REBUILD_DESCRIPTION,
        examples=_REBUILD_EXAMPLES,
    )
    parser.add_argument(
        "projection",
        choices=["all", *PROJECTIONS],
        help="what to rebuild: all, or one of " + ", ".join(PROJECTIONS),
    )
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    _add_schema_option(parser)
    parser.add_argument("--shadow", metavar="SCHEMA", help="schema to rebuild into")
    parser.add_argument("--dry-run", action="store_true", help="compare only, swap nothing")
    parser.add_argument(
        "--keep-shadow", action="store_true", help="keep the shadow schema afterwards"
    )
    parser.add_argument(
        "--batch-size", type=_positive, default=10_000, metavar="N", help="records per transaction"
    )
    parser.set_defaults(run=run_rebuild)


async def run_rebuild(args: argparse.Namespace) -> int:
    """Rebuild, print the comparison; exit 3 on a difference with --dry-run."""
    from agentlog.projections.rebuild import rebuild

    settings, projection = _settings(args)
    base.configure_logging(settings.log_level)
    bar = ProgressBar(f"rebuild {args.projection}")
    report = await rebuild(
        settings,
        args.projection,
        schema=projection.schema,
        shadow=args.shadow,
        swap=not args.dry_run,
        keep_shadow=args.keep_shadow,
        batch_size=args.batch_size,
        progress=bar.update,
    )
    bar.finish()
    for table, live in report.live.items():
        rebuilt = report.rebuilt[table]
        verdict = "equal" if rebuilt == live else "DIFFERS"
        swapped = "  swapped in" if table in report.swapped else ""
        rows = f"live {live.rows:>10,} rows  rebuilt {rebuilt.rows:>10,}"
        print(f"  {table:24} {verdict:8} {rows}{swapped}")
    rate = report.records / report.seconds if report.seconds else 0.0
    print(f"{report.records:,} records in {report.seconds:.1f} s ({rate:,.0f}/s)")
    if report.differing and args.dry_run:
        return EXIT_DIFFERS
    return base.EXIT_OK


class ProgressBar:
    """A one-line progress bar on stderr (plain lines every few seconds when not a terminal)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def update(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` records."""
        now = time.monotonic()
        if not self._tty and now - self._last < 5:
            return
        self._last = now
        share = min(1.0, done / total) if total else 1.0
        filled = int(share * self.width)
        rate = done / max(now - self.started, 1e-9)
        line = (
            f"{self.label}: [{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
            f"{done:,}/{total:,} records {rate:,.0f}/s"
        )
        print(("\r" if self._tty else "") + line, end="" if self._tty else "\n", file=self.stream)
        self.stream.flush()

    def finish(self) -> None:
        """End the line."""
        if self._tty:
            print(file=self.stream)


# -- agentlog api ---------------------------------------------------------------------------

_API_DESCRIPTION = """\
Serve the query API over the read models: workflows (list, state, state as of
an event or a time, history, timeline, live tail), locks, agents, dead
letters, /stats, Prometheus /metrics, and writes that only produce events
(start, cancel, signal, redrive). OpenAPI at /openapi.json, docs at /docs.

Set AGENTLOG_API_TOKEN to require `Authorization: Bearer <token>` on every
route. While PostgreSQL is down, routes answer 503."""

_API_EXAMPLES = """\
  agentlog api
  agentlog api --host 0.0.0.0 --port 8080
  AGENTLOG_API_TOKEN=s3cret agentlog api"""


def add_api_command(subparsers: Subparsers) -> None:
    """Register ``agentlog api``."""
    parser = base.add_command(
        subparsers,
        "api",
        help="serve the query API (HTTP, OpenAPI)",
        description=_API_DESCRIPTION,
        examples=_API_EXAMPLES,
    )
    base.add_connection_options(parser)
    add_topic_prefix_option(parser)
    _add_schema_option(parser)
    parser.add_argument("--host", help="address to listen on [AGENTLOG_API_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=_port, help="port [AGENTLOG_API_PORT, 8080]")
    parser.set_defaults(run=run_api)


async def run_api(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C / SIGTERM (uvicorn handles the signals)."""
    import uvicorn

    from agentlog.projections.api import create_app

    settings, projection = _settings(args, api_host=args.host, api_port=args.port)
    base.configure_logging(settings.log_level)
    app = create_app(settings, projection)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=projection.api_host,
            port=projection.api_port,
            log_level=settings.log_level.lower(),
            lifespan="on",
        )
    )
    print(f"agentlog api on http://{projection.api_host}:{projection.api_port}/docs", flush=True)
    print(f"web page at http://{projection.api_host}:{projection.api_port}/ui/", flush=True)
    await server.serve()
    return base.EXIT_OK


# -- shared --------------------------------------------------------------------------------


def _add_schema_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema",
        metavar="NAME",
        help="PostgreSQL schema of the read models [AGENTLOG_PROJECTION_SCHEMA, agentlog]",
    )


def _settings(args: argparse.Namespace, **api: Any) -> tuple[Settings, ProjectionSettings]:
    """Settings from the environment and flags (``--schema``, ``--host``, ``--port`` included)."""
    from agentlog.projections.config import ProjectionSettings

    flags = {"api_host": "--host", "api_port": "--port"}
    given = dict(api)  # --schema is one of base.FLAG_FOR_FIELD
    prefix = getattr(args, "topic_prefix", None)
    try:
        settings = base.settings_from_args(args, topic_prefix=prefix, **given)
    except ConfigError as e:
        field = e.setting.removeprefix("AGENTLOG_").lower()
        if field == "topic_prefix" and prefix is not None:
            raise ConfigError("--topic-prefix", e.value, e.problem, e.fix) from None
        if given.get(field) is not None:
            raise ConfigError(flags[field], e.value, e.problem, e.fix) from None
        raise
    if settings.postgres_dsn is None:
        raise ConfigError(
            "AGENTLOG_POSTGRES_DSN",
            None,
            "no PostgreSQL address is set",
            "Set AGENTLOG_POSTGRES_DSN, pass --postgres DSN, or start `agentlog dev`.",
        )
    return settings, ProjectionSettings.from_settings(settings)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1..65535)")
    return value


def _partitions(text: str) -> frozenset[int]:
    try:
        numbers = frozenset(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of partition numbers, e.g. 0,1,2"
        ) from None
    if not numbers or min(numbers) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give partition numbers 0 or more")
    return numbers


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return base.EXIT_USAGE
