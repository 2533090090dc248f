"""Broker + PostgreSQL + Redis for one process: embedded children or external servers.

Each of the three comes from :class:`~agentlog.settings.Settings` when it names
one (then it is only checked, failing fast with a :class:`ConnectError`), or is
started as a child process. All start in parallel; the first failure stops the
rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Self

from agentlog.errors import ConfigError, EmbeddedServerError
from agentlog.settings import Settings
from agentlog.streams.embedded.checks import (
    KAFKA_SETTING,
    POSTGRES_SETTING,
    REDIS_SETTING,
    check_kafka,
    check_postgres,
    check_redis,
)
from agentlog.streams.embedded.postgres import PostgresLauncher
from agentlog.streams.embedded.process import ensure_port_free
from agentlog.streams.embedded.redis import RedisLauncher
from agentlog.streams.embedded.server import EmbeddedServer, FailureScope
from agentlog.streams.embedded.tansu import TansuLauncher

logger = logging.getLogger(__name__)

_DEFAULT_NAMES = {
    "kafka_bootstrap": KAFKA_SETTING,
    "postgres_dsn": POSTGRES_SETTING,
    "redis_url": REDIS_SETTING,
    "data_dir": "AGENTLOG_DATA_DIR",
    "kafka_port": "--kafka-port",
    "postgres_port": "--postgres-port",
    "redis_port": "--redis-port",
}


@dataclass(frozen=True, slots=True)
class EmbeddedOptions:
    """How to run the embedded servers (what :class:`Settings` does not cover).

    Attributes:
        kafka_port: port for the embedded broker, None for a free one.
        postgres_port: port for the embedded PostgreSQL, None for a free one.
        redis_port: port for the embedded Redis, None for a free one.
        fresh_postgres: start PostgreSQL from an empty cluster. None means "when
            the broker is embedded": a memory-only broker starts empty, and
            projections of a previous run would not match it.
        postgres_system_user: the unprivileged user PostgreSQL runs as when we are root.
        start_timeout: seconds each embedded server has to answer.
        connect_timeout: seconds each external server has to answer.
        stop_grace: seconds a server has to stop before it is killed.
        setting_names: what to call each setting in errors, by field name
            (``kafka_bootstrap``, ``kafka_port``, …), e.g. ``{"kafka_bootstrap": "--kafka"}``
            when the value came from a flag. Defaults to the variable names.
    """

    kafka_port: int | None = None
    postgres_port: int | None = None
    redis_port: int | None = None
    fresh_postgres: bool | None = None
    postgres_system_user: str = "agentlog"
    start_timeout: float = 30.0
    connect_timeout: float = 5.0
    stop_grace: float = 10.0
    setting_names: Mapping[str, str] = field(default_factory=dict)

    def name(self, key: str) -> str:
        """The flag or variable to blame for setting ``key``."""
        return self.setting_names.get(key) or _DEFAULT_NAMES[key]


class EmbeddedStack:
    """The three servers agentlog needs, as one async context manager.

    Example::

        settings = Settings.from_env()
        async with EmbeddedStack(settings) as stack:
            print(stack.bootstrap, stack.dsn, stack.redis_url)
            await serve_forever()  # interrupted with EmbeddedServerError if a child dies

    Attributes:
        settings: where external servers come from, and ``data_dir``.
        options: ports, timeouts and names for errors.
        data_dir: absolute data directory (logs, PostgreSQL data, the lock file).
        servers: the embedded servers by kind (``kafka``, ``postgres``, ``redis``);
            a kind given in ``settings`` is absent.
        startup_seconds: how long :meth:`start` took.
    """

    def __init__(self, settings: Settings, options: EmbeddedOptions | None = None) -> None:
        self.settings = settings
        self.options = options or EmbeddedOptions()
        self.data_dir = settings.data_dir.resolve()
        self.servers: dict[str, EmbeddedServer] = self._plan()
        self.startup_seconds: float | None = None
        self.failure: EmbeddedServerError | None = None
        self._started = False
        self._lock_file: IO[str] | None = None
        self._scope = FailureScope()
        for server in self.servers.values():
            server.on_crash(self._on_crash)

    # -- addresses -----------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap servers (``host:port[,…]``)."""
        return self._address("kafka", self.settings.kafka_bootstrap)

    @property
    def dsn(self) -> str:
        """PostgreSQL DSN."""
        return self._address("postgres", self.settings.postgres_dsn)

    @property
    def redis_url(self) -> str:
        """Redis URL."""
        return self._address("redis", self.settings.redis_url)

    @property
    def fresh_postgres(self) -> bool:
        """True when the embedded PostgreSQL starts from an empty cluster each run."""
        pg = self.servers.get("postgres")
        return isinstance(pg, PostgresLauncher) and pg.fresh

    def describe(self) -> dict[str, Any]:
        """The embedded servers: ``{kind: {pid, port, address, log, data_dir, …}}``."""
        return {kind: server.info() for kind, server in self.servers.items()}

    def settings_for_services(self) -> Settings:
        """:attr:`settings` with the three addresses filled in, for the services run inside."""
        return self.settings.with_overrides(
            kafka_bootstrap=self.bootstrap, postgres_dsn=self.dsn, redis_url=self.redis_url
        )

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Check external servers and start embedded ones, in parallel; idempotent.

        Raises:
            ConfigError: a requested port is in use, or the data directory is in use.
            ConnectError: an external server does not answer.
            EmbeddedServerError: an embedded server did not start.
        """
        if self._started:
            return
        started = time.monotonic()
        self.failure = None
        self._preflight()
        try:
            await _first_failure_cancels_rest(self._startups())
        except BaseException:
            await self._stop_servers()
            self._release_lock()
            raise
        self._started = True
        self.startup_seconds = time.monotonic() - started
        logger.info("stack ready in %.1fs", self.startup_seconds)

    async def stop(self) -> None:
        """Stop every embedded server and release the data directory; idempotent."""
        self._started = False
        try:
            await self._stop_servers()
        finally:
            self._release_lock()

    async def __aenter__(self) -> Self:
        await self.start()
        self._scope.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._scope.begin_exit()
        try:
            await self.stop()
        finally:
            self._scope.finish(exc_type)

    # -- internals -----------------------------------------------------------

    def _plan(self) -> dict[str, EmbeddedServer]:
        opts, settings = self.options, self.settings
        common: dict[str, Any] = {
            "start_timeout": opts.start_timeout,
            "stop_grace": opts.stop_grace,
        }
        servers: dict[str, EmbeddedServer] = {}
        if settings.kafka_bootstrap is None:
            servers["kafka"] = TansuLauncher(
                self.data_dir, port=opts.kafka_port, port_setting=opts.name("kafka_port"), **common
            )
        if settings.postgres_dsn is None:
            fresh = opts.fresh_postgres
            servers["postgres"] = PostgresLauncher(
                self.data_dir,
                port=opts.postgres_port,
                port_setting=opts.name("postgres_port"),
                fresh=settings.kafka_bootstrap is None if fresh is None else fresh,
                system_user=opts.postgres_system_user,
                **common,
            )
        if settings.redis_url is None:
            servers["redis"] = RedisLauncher(
                self.data_dir, port=opts.redis_port, port_setting=opts.name("redis_port"), **common
            )
        return servers

    def _preflight(self) -> None:
        """Fail before starting anything: ports taken, data directory in use."""
        for key in ("kafka_port", "postgres_port", "redis_port"):
            port = getattr(self.options, key)
            if port is not None and key.removesuffix("_port") in self.servers:
                ensure_port_free(port, self.options.name(key))
        if self.servers:
            self._acquire_lock()

    def _startups(self) -> list[Awaitable[None]]:
        opts, settings = self.options, self.settings
        timeout = opts.connect_timeout
        steps: list[Awaitable[None]] = [server.start() for server in self.servers.values()]
        if settings.kafka_bootstrap is not None:
            steps.append(
                check_kafka(
                    settings.kafka_bootstrap,
                    setting=opts.name("kafka_bootstrap"),
                    within=timeout,
                    client_options=settings.kafka_client_options(),
                )
            )
        if settings.postgres_dsn is not None:
            steps.append(
                check_postgres(
                    settings.postgres_dsn, setting=opts.name("postgres_dsn"), within=timeout
                )
            )
        if settings.redis_url is not None:
            steps.append(
                check_redis(settings.redis_url, setting=opts.name("redis_url"), within=timeout)
            )
        return steps

    def _address(self, kind: str, external: str | None) -> str:
        if external is not None:
            return external
        server = self.servers[kind]
        if not server.running:
            raise EmbeddedServerError(
                f"the embedded {server.label} is not running; start the stack first."
            )
        return server.address

    def _on_crash(self, error: EmbeddedServerError) -> None:
        if self.failure is None:
            self.failure = error
        self._scope.fail(error)

    async def _stop_servers(self) -> None:
        # In parallel: each may wait out its grace period.
        results = await asyncio.gather(
            *(server.stop() for server in self.servers.values()), return_exceptions=True
        )
        for kind, result in zip(self.servers, results, strict=True):
            if isinstance(result, Exception):
                logger.error("stopping the embedded %s failed: %s", kind, result)
            elif isinstance(result, BaseException):
                raise result

    def _acquire_lock(self) -> None:
        if self._lock_file is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "embedded.lock"
        lock_file = path.open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise ConfigError(
                self.options.name("data_dir"),
                str(self.data_dir),
                f"the data directory is in use by {holder}",
                "Stop that agentlog, or choose another data directory.",
            ) from None
        lock_file.truncate(0)
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file

    def _release_lock(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            with contextlib.suppress(OSError):
                lock_file.truncate(0)
            lock_file.close()


async def _first_failure_cancels_rest(steps: list[Awaitable[None]]) -> None:
    """Run ``steps`` concurrently; on the first error cancel the others and raise it.

    Unlike ``asyncio.gather``, an unreachable broker fails the start at once
    instead of after PostgreSQL has finished starting.
    """
    if not steps:
        return
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
    for extra in errors[1:]:
        logger.error("also failed while starting: %s", extra)
    if errors:
        raise errors[0]
