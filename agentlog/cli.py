"""The ``agentlog`` command line (also ``python -m agentlog``).

Adding a subcommand
-------------------
Write one function ``add_<name>_command(subparsers)`` that

1. creates its parser with :func:`add_command` (name, one-line help, a
   description that teaches, and an epilog of examples),
2. adds its arguments (reuse :func:`add_connection_options` for
   ``--kafka/--postgres/--redis/--data-dir/--log-level``),
3. calls ``parser.set_defaults(run=handler)``, where ``handler(args)`` returns
   an exit code, or is an ``async def`` that does (it then runs under
   :func:`asyncio.run`),

and append it to :data:`COMMANDS`. A command module of its own (which imports
helpers from here) is imported inside :func:`registered_commands`, never at the
top of this module, to avoid a circular import::

    def registered_commands() -> tuple[Register, ...]:
        from agentlog.client_cli import CLIENT_COMMANDS
        return (*COMMANDS, *CLIENT_COMMANDS)

Import heavy modules inside the handler so ``agentlog --help`` stays instant.
Build settings with :func:`settings_from_args` and call :func:`configure_logging`
first thing in the handler: only the CLI configures logging handlers. Raise
:class:`~agentlog.errors.AgentlogError` subclasses for failures: :func:`main`
prints them as ``error: …`` (exit 2 for a :class:`~agentlog.errors.ConfigError`,
1 otherwise), never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from agentlog import __version__
from agentlog.errors import AgentlogError, ConfigError
from agentlog.settings import DEFAULT_API_PORT, ENV_PREFIX, Settings

if TYPE_CHECKING:
    from agentlog.streams.embedded.stack import EmbeddedStack

logger = logging.getLogger(__name__)

#: What a registration function receives (``parser.add_subparsers()``).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: A registration function: adds one subcommand (see the module doc).
Register: TypeAlias = "Callable[[Subparsers], None]"

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The flag that sets each Settings field, for errors that name what the user typed.
FLAG_FOR_FIELD: dict[str, str] = {
    "kafka_bootstrap": "--kafka",
    "postgres_dsn": "--postgres",
    "redis_url": "--redis",
    "data_dir": "--data-dir",
    "log_level": "--log-level",
    "projection_schema": "--schema",
}


# -- shared helpers -----------------------------------------------------------


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    help: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    """Create a subcommand parser with a teaching ``--help`` (description + examples)."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--kafka``, ``--postgres``, ``--redis``, ``--data-dir``, ``--log-level`` (override env)."""
    group = parser.add_argument_group(
        "servers and settings (each overrides its AGENTLOG_* environment variable)"
    )
    group.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers [AGENTLOG_KAFKA_BOOTSTRAP]",
    )
    group.add_argument("--postgres", metavar="DSN", help="PostgreSQL DSN [AGENTLOG_POSTGRES_DSN]")
    group.add_argument("--redis", metavar="URL", help="Redis URL [AGENTLOG_REDIS_URL]")
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="where logs, data and dev.json live [AGENTLOG_DATA_DIR, default .agentlog]",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR [AGENTLOG_LOG_LEVEL, default INFO]",
    )


def settings_from_args(
    args: argparse.Namespace, *, use_dev_stack: bool = True, **extra: Any
) -> Settings:
    """``Settings.from_env`` with the connection flags (and ``extra``) as overrides.

    Server addresses left unset come from a running ``agentlog dev``
    (:func:`with_dev_stack`) unless ``use_dev_stack`` is False.

    Raises:
        ConfigError: naming the flag when the bad value came from a flag, else the variable.
    """
    given = {
        field: getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        for field, flag in FLAG_FOR_FIELD.items()
    }
    try:
        settings = Settings.from_env(**given, **extra)
    except ConfigError as e:
        field = e.setting.removeprefix(ENV_PREFIX).lower()
        if given.get(field) is not None:
            raise ConfigError(FLAG_FOR_FIELD[field], e.value, e.problem, e.fix) from None
        raise
    return settings if not use_dev_stack else with_dev_stack(settings)


def with_dev_stack(settings: Settings) -> Settings:
    """Fill unset server addresses from a running ``agentlog dev`` (DATA_DIR/dev.json).

    Addresses from flags or ``AGENTLOG_*`` win; the file is used only while the
    ``agentlog dev`` process that wrote it is alive.
    """
    path = settings.data_dir / "dev.json"
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
        os.kill(pid, 0)  # raises if that agentlog dev is gone
    except (OSError, ValueError, KeyError, TypeError):
        return settings
    logger.debug("using the running agentlog dev (pid %s) from %s", pid, path)
    return settings.with_overrides(
        kafka_bootstrap=settings.kafka_bootstrap or info.get("kafka_bootstrap"),
        postgres_dsn=settings.postgres_dsn or info.get("postgres_dsn"),
        redis_url=settings.redis_url or info.get("redis_url"),
    )


def setting_names(args: argparse.Namespace) -> dict[str, str]:
    """For each Settings field given as a flag, that flag (to name it in errors)."""
    return {
        field: flag
        for field, flag in FLAG_FOR_FIELD.items()
        if getattr(args, flag.removeprefix("--").replace("-", "_"), None) is not None
    }


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; client libraries only from WARNING unless DEBUG."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if level.upper() != "DEBUG":
        for noisy in ("aiokafka", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1..65535)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 seconds")
    return value


class StopSignals:
    """SIGINT/SIGTERM as an event: the first asks for a clean stop, later ones are reported.

    Before :meth:`mark_ready` a signal cancels the running task instead, so a
    start that hangs can be interrupted (and still cleans up).
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._event = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._ready = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle SIGINT and SIGTERM on the running loop while inside the block."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield self
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def mark_ready(self) -> None:
        """From now on a signal sets the event instead of cancelling the task."""
        self._ready = True

    async def wait(self) -> signal.Signals | None:
        """Until the first signal; returns it."""
        await self._event.wait()
        return self.received

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is not None:
            print(f"{sig.name}: already stopping, please wait", file=sys.stderr, flush=True)
            return
        self.received = sig
        print(f"\n{sig.name}: stopping…", file=sys.stderr, flush=True)
        self._event.set()
        if not self._ready and self._task is not None:
            self._task.cancel()


# -- agentlog dev ---------------------------------------------------------------

_DEV_DESCRIPTION = """\
Run everything agentlog needs on this machine, as child processes of this command:
a Kafka-compatible broker (Tansu), PostgreSQL and Redis, each on a free port of
127.0.0.1 unless you pick one. Nothing else to install, no Docker. Then, in this
process, the orchestrator, the lock manager, the projector (read models in
PostgreSQL) and the query API, whose URL is printed (port 8080, or a free one
when 8080 is taken, unless you pick one), and the demo agents.

The embedded broker is memory-only: its topics vanish when agentlog dev stops.
So that projections never describe events the broker no longer has, the
embedded PostgreSQL then starts from a fresh data directory on every run.

Point --kafka, --postgres or --redis (or AGENTLOG_KAFKA_BOOTSTRAP, …) at a
server of your own and that one is only checked, not started. The addresses are
printed and written to DATA_DIR/dev.json (removed on exit). Logs are in
DATA_DIR/kafka, DATA_DIR/postgres and DATA_DIR/redis. Stop with Ctrl-C or
SIGTERM; if agentlog dev is killed, its servers die with it.

AGENTLOG_API_TOKEN, AGENTLOG_API_HOST and AGENTLOG_PROJECTION_SCHEMA apply to
the API and the projector run here as they do to `agentlog api`."""

_DEV_EXAMPLES = """\
  agentlog dev                                  # everything embedded, in ./.agentlog
  agentlog dev --data-dir /tmp/agentlog         # elsewhere
  agentlog dev --kafka-port 9092                # the broker on a fixed port
  agentlog dev --api-port 8000                  # the query API on a fixed port
  agentlog dev --kafka broker1:9092 --redis redis://127.0.0.1:6379/0
  AGENTLOG_POSTGRES_DSN=postgresql://me@127.0.0.1/agentlog agentlog dev
  python -m agentlog dev --log-level DEBUG"""


def add_dev_command(subparsers: Subparsers) -> None:
    """Register ``agentlog dev``."""
    parser = add_command(
        subparsers,
        "dev",
        help="run the broker, PostgreSQL and Redis locally (embedded) until Ctrl-C",
        description=_DEV_DESCRIPTION,
        examples=_DEV_EXAMPLES,
    )
    add_connection_options(parser)
    ports = parser.add_argument_group("embedded servers")
    ports.add_argument("--kafka-port", type=_port, metavar="N", help="port for the broker")
    ports.add_argument("--postgres-port", type=_port, metavar="N", help="port for PostgreSQL")
    ports.add_argument("--redis-port", type=_port, metavar="N", help="port for Redis")
    ports.add_argument(
        "--api-port",
        type=_port,
        metavar="N",
        help="port for the query API [AGENTLOG_API_PORT, 8080 or a free one if taken]",
    )
    ports.add_argument(
        "--start-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long each server may take to answer (default 30)",
    )
    parser.add_argument(
        "--no-agents",
        action="store_true",
        help="do not run the demo agents in this process (run your own with `agentlog agent run`)",
    )
    parser.set_defaults(run=run_dev)


async def run_dev(args: argparse.Namespace) -> int:
    """``agentlog dev``: start the stack, print where it is, run until a signal."""
    from agentlog.streams.embedded.stack import EmbeddedOptions, EmbeddedStack

    settings = settings_from_args(args, use_dev_stack=False)
    configure_logging(settings.log_level)
    options = EmbeddedOptions(
        kafka_port=args.kafka_port,
        postgres_port=args.postgres_port,
        redis_port=args.redis_port,
        start_timeout=args.start_timeout,
        setting_names=setting_names(args),
    )
    stack = EmbeddedStack(settings, options)
    _remove_stale_dev_json(stack.data_dir)
    _print_plan(stack)
    signals = StopSignals()
    with signals.installed():
        try:
            async with contextlib.AsyncExitStack() as running:
                await running.enter_async_context(stack)
                api = _api_port(settings, args.api_port)
                services = await start_services(
                    stack, running, demo_agents=not args.no_agents, api_port=api
                )
                info_path = _write_dev_json(stack, services.api_url)
                running.callback(info_path.unlink, missing_ok=True)
                _print_ready(stack, info_path, services.notes)
                signals.mark_ready()
                await signals.wait()
        except asyncio.CancelledError:
            if signals.received is None:
                raise
            print("interrupted while starting; everything is stopped", flush=True)
            return EXIT_INTERRUPTED
    print("agentlog dev stopped", flush=True)
    return EXIT_OK


@dataclass(frozen=True)
class Services:
    """What :func:`start_services` started, to print and to write to dev.json.

    Attributes:
        notes: lines to print once everything is ready.
        api_url: where the query API answers (None when it is not served).
    """

    notes: list[str]
    api_url: str | None = None


@dataclass(frozen=True)
class ApiPort:
    """The query API's port for ``agentlog dev`` and the setting that chose it.

    Attributes:
        port: the port; 0 picks a free one.
        setting: the flag or variable named in errors ("" when it is the default).
        fallback: when the default port is taken, take a free one instead of failing.
    """

    port: int
    setting: str = ""
    fallback: bool = False


def _api_port(settings: Settings, flag: int | None) -> ApiPort:
    if flag is not None:
        return ApiPort(flag, "--api-port")
    if settings.api_port is not None:
        return ApiPort(settings.api_port, "AGENTLOG_API_PORT")
    return ApiPort(DEFAULT_API_PORT, fallback=True)


async def start_services(
    stack: EmbeddedStack,
    running: contextlib.AsyncExitStack,
    *,
    demo_agents: bool = True,
    api_port: ApiPort | None = None,
) -> Services:
    """Start the engine services inside the running stack.

    Each service is entered into ``running``: services stop before the servers,
    in reverse order, and a service that fails in the background surfaces out
    of ``agentlog dev`` the same way a crashed server does.

    Args:
        stack: the running servers.
        running: where each service is entered.
        demo_agents: also run the demo agents in this process.
        api_port: serve the query API there; None: do not serve it.

    Raises:
        ConfigError: the API port is in use (and was chosen, not the default).
    """
    from agentlog.agents.demo import DEMO_AGENTS
    from agentlog.agents.locks import LockManager
    from agentlog.agents.orchestrator import Orchestrator, build_registry
    from agentlog.agents.runtime import AgentRunner
    from agentlog.projections.runner import Projector, ProjectorConfig

    settings = stack.settings_for_services()
    registry = build_registry(default_timeout_ms=settings.default_workflow_timeout_ms)
    await running.enter_async_context(Orchestrator(settings, registry))
    await running.enter_async_context(LockManager(settings))
    await running.enter_async_context(
        Projector(
            settings,
            ProjectorConfig(
                schema=settings.projection_schema, gc_threshold=settings.gc_threshold or None
            ),
        )
    )
    notes = [
        f"orchestrator  running {len(registry.names())} demo definitions",
        "lock manager  agentlog locks show <resource>",
        f"projector     read models in PostgreSQL schema {settings.projection_schema}",
    ]
    api_url = None
    if api_port is not None:
        api_url = await _start_api(settings, running, api_port)
        notes.append(f"api          {api_url}/docs  (GET /workflows, /stats, /metrics)")
        notes.append(f"web page     {api_url}/ui/  (workflows, timelines, metrics)")
    if demo_agents:
        await running.enter_async_context(AgentRunner(DEMO_AGENTS, settings))
        notes.append(f"demo agents   {len(DEMO_AGENTS)} kinds in this process")
    notes.append("try          agentlog definitions; agentlog submit pr-deploy")
    return Services(notes, api_url)


async def _start_api(
    settings: Settings, running: contextlib.AsyncExitStack, choice: ApiPort
) -> str:
    from agentlog.projections.api.server import ApiServer

    def server(port: int) -> ApiServer:
        return ApiServer(settings, port=port, port_setting=choice.setting or "--api-port")

    try:
        api = await running.enter_async_context(server(choice.port))
    except ConfigError as e:
        if not choice.fallback or "already in use" not in e.problem:
            raise
        logger.info("port %s is taken; the API takes a free port", choice.port)
        api = await running.enter_async_context(server(0))
    return api.url


def _print_plan(stack: EmbeddedStack) -> None:
    kinds = {"kafka": "Kafka broker (Tansu)", "postgres": "PostgreSQL", "redis": "Redis"}
    embedded = [kinds[k] for k in stack.servers]
    print(f"agentlog dev: data directory {stack.data_dir}", flush=True)
    if embedded:
        print(f"starting {', '.join(embedded)} as child processes…", flush=True)
    if "kafka" in stack.servers:
        print("note: the embedded broker is memory-only; its topics vanish on exit", flush=True)
    if stack.fresh_postgres:
        print(
            "note: so the embedded PostgreSQL starts from a fresh data directory each run "
            "(old projections would not match an empty broker)",
            flush=True,
        )


def _print_ready(stack: EmbeddedStack, info_path: Path, notes: Sequence[str]) -> None:
    def origin(kind: str) -> str:
        server = stack.servers.get(kind)
        if server is None:
            return "external"
        return f"embedded, pid {server.pid}, log {server.log_path}"

    print(f"  kafka     {stack.bootstrap}  ({origin('kafka')})", flush=True)
    print(f"  postgres  {stack.dsn}  ({origin('postgres')})", flush=True)
    print(f"  redis     {stack.redis_url}  ({origin('redis')})", flush=True)
    for note in notes:
        print(f"  {note}", flush=True)
    print(f"  details   {info_path}", flush=True)
    print(f"ready in {stack.startup_seconds or 0.0:.1f}s; press Ctrl-C to stop", flush=True)


def _remove_stale_dev_json(data_dir: Path) -> None:
    """Drop a dev.json left by a killed run, so nobody reads dead addresses from it."""
    path = data_dir / "dev.json"
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        logger.info("removed %s of a run that no longer exists (pid %s)", path, pid)
    except PermissionError:
        pass  # alive, someone else's


def _write_dev_json(stack: EmbeddedStack, api_url: str | None = None) -> Path:
    """Write DATA_DIR/dev.json atomically, readable only by us (it holds the DSN)."""
    info: dict[str, Any] = {
        "kafka_bootstrap": stack.bootstrap,
        "postgres_dsn": stack.dsn,
        "redis_url": stack.redis_url,
        "api_url": api_url,
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ready_seconds": round(stack.startup_seconds or 0.0, 3),
        "data_dir": str(stack.data_dir),
        "embedded": stack.describe(),
    }
    path = stack.data_dir / "dev.json"
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    tmp.replace(path)
    return path


# -- the parser and the entry point ---------------------------------------------------

#: Every subcommand, in ``--help`` order: one registration function each (see module doc).
COMMANDS: tuple[Register, ...] = (add_dev_command,)


def registered_commands() -> tuple[Register, ...]:
    """Every subcommand: :data:`COMMANDS` plus those of command modules (imported here)."""
    from agentlog.agents.locks.cli import add_locks_command
    from agentlog.agents.orchestrator.cli import add_orchestrator_command
    from agentlog.agents.orchestrator.replay_cli import REPLAY_COMMANDS
    from agentlog.agents.runtime.cli import add_agent_command
    from agentlog.client_cli import CLIENT_COMMANDS
    from agentlog.projections.cli import (
        add_api_command,
        add_projector_command,
        add_rebuild_command,
    )
    from agentlog.topics_cli import add_schemas_command, add_topics_command

    return (
        *COMMANDS,
        *CLIENT_COMMANDS,
        *REPLAY_COMMANDS,
        add_orchestrator_command,
        add_locks_command,
        add_agent_command,
        add_projector_command,
        add_api_command,
        add_rebuild_command,
        add_topics_command,
        add_schemas_command,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``agentlog`` parser with every command in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="agentlog",
        description=(
            "agentlog: an event-sourced orchestration engine for multi-agent workflows "
            "on Kafka-compatible streams."
        ),
        epilog="examples:\n  agentlog dev\n  agentlog dev --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agentlog {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in registered_commands():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    0 success, 1 failure (a server unreachable or dead), 2 bad usage or
    configuration, 130 interrupted.
    """
    parser = build_parser()
    return run_parsed(parser, parser.parse_args(argv))


def run_parsed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the command ``args.run`` names (sync or async); map errors to exit codes.

    Shared by ``agentlog`` and the ``python -m agentlog.…`` entry points: 2 for bad
    usage or configuration (help when no command was given), 1 for a failure, 130
    when interrupted.
    """
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(run(args)) if inspect.iscoroutinefunction(run) else run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AgentlogError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(result)
