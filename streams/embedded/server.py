"""The lifecycle every embedded server shares: port, spawn, readiness, crash watch, stop."""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from agentlog.errors import ConfigError, ConnectError, EmbeddedServerError
from agentlog.streams.embedded.checks import redact
from agentlog.streams.embedded.process import (
    ChildProcess,
    ChildSpec,
    describe_exit,
    ensure_port_free,
    pick_free_port,
    port_holder,
)

logger = logging.getLogger(__name__)

#: How servers say that their port is taken (PostgreSQL and Redis exit, Tansu keeps running).
_ADDRESS_IN_USE = ("Address already in use", "AddrInUse")
_READY_POLL = 0.05
_PROBE_TIMEOUT = 2.0
_PORT_ATTEMPTS = 3

CrashCallback = Callable[[EmbeddedServerError], None]


class FailureScope:
    """Surfaces a background failure out of an ``async with`` block.

    On :meth:`fail` the task that entered the block is cancelled (as
    ``asyncio.timeout`` does); :meth:`finish` then turns that cancellation into
    the failure. A failure outside any block is only recorded.
    """

    def __init__(self) -> None:
        self._host: asyncio.Task[Any] | None = None
        self._failure: BaseException | None = None
        self._cancelled = False
        self._exiting = False

    def enter(self) -> None:
        """Bind to the current task (call from ``__aenter__``)."""
        self._host = asyncio.current_task()
        self._failure = None
        self._cancelled = False
        self._exiting = False

    def fail(self, error: BaseException) -> None:
        """Record ``error`` and interrupt the block, once."""
        if self._failure is None:
            self._failure = error
        if self._host is not None and not self._exiting and not self._cancelled:
            self._cancelled = True
            self._host.cancel(msg=str(error))

    def begin_exit(self) -> None:
        """The block is closing: from now on failures are recorded, not delivered."""
        self._exiting = True

    def finish(self, exc_type: type[BaseException] | None) -> None:
        """Raise the recorded failure in place of our own cancellation (from ``__aexit__``)."""
        host, self._host = self._host, None
        failure, self._failure = self._failure, None
        if self._cancelled and host is not None and host.uncancel() > 0:
            return  # someone else cancelled the task too: let that cancellation win
        if failure is not None and (
            exc_type is None or issubclass(exc_type, asyncio.CancelledError)
        ):
            raise failure


class _PortTakenError(Exception):
    """The server lost the race for its port."""


class EmbeddedServer(abc.ABC):
    """One server run as a child process; an async context manager.

    Subclasses say how to prepare the data directory, the command line, how to
    check that the server answers, and what to do once it does.
    """

    #: Short name, also the sub-directory of the data dir: ``kafka``, ``postgres``, ``redis``.
    kind: ClassVar[str]
    #: Human label for messages, e.g. ``"Kafka broker (Tansu)"``.
    label: ClassVar[str]

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        port_setting: str,
        start_timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        self.directory = (data_dir / self.kind).resolve()
        self.log_path = self.directory / f"{self.kind}.log"
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._requested_port = port
        self._port_setting = port_setting
        self._port: int | None = None
        self._child: ChildProcess | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self._callbacks: list[CrashCallback] = []
        self._scope = FailureScope()
        self.failure: EmbeddedServerError | None = None

    # -- public API ----------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 the server listens on."""
        if self._port is None or self._child is None:
            raise EmbeddedServerError(f"{self.label} is not running; call start() first.")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._child.pid if self._child else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._child is not None and self._child.returncode is None

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """What clients connect to: a bootstrap, DSN or URL."""

    def info(self) -> dict[str, Any]:
        """A JSON-ready description: pid, port, address, log and data paths."""
        return {
            "pid": self.pid,
            "port": self._port,
            "address": self.address if self.running else None,
            "log": str(self.log_path),
            "data_dir": str(self.directory),
        }

    def on_crash(self, callback: CrashCallback) -> None:
        """Call ``callback(error)`` when the server dies unexpectedly after it was ready."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start the server and wait until it answers; idempotent.

        Raises:
            ConfigError: the requested port is in use.
            EmbeddedServerError: the server did not start or answer in time.
        """
        async with self._lock:
            if self._child is not None:
                return
            self._stopping = False
            self.failure = None
            started = time.monotonic()
            if self._requested_port is not None:
                ensure_port_free(self._requested_port, self._port_setting)
            self.directory.mkdir(parents=True, exist_ok=True)
            self.log_path.write_bytes(b"")  # this run's log only
            try:
                await self._prepare()
                child = await self._spawn_until_ready(started + self.start_timeout)
            except BaseException:
                await self._cleanup()
                raise
            self._watcher = asyncio.create_task(self._watch(child), name=f"watch-{self.kind}")
            logger.info(
                "%s ready at %s (pid %s) in %.1fs",
                self.label,
                redact(self.address),
                child.pid,
                time.monotonic() - started,
            )

    async def stop(self) -> None:
        """Stop the server (gracefully, then by force) and its leftovers; idempotent."""
        async with self._lock:
            self._stopping = True
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.cancel()
                await asyncio.wait([watcher])
            child, self._child = self._child, None
            if child is not None:
                code = await child.stop(self.stop_grace)
                logger.info("%s pid=%s stopped (%s)", self.label, child.pid, describe_exit(code))
            await self._cleanup()

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

    # -- subclass hooks ------------------------------------------------------

    async def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Get the data directory ready (runs once per start, before the first spawn)."""

    @abc.abstractmethod
    def _spec(self, port: int) -> ChildSpec:
        """The command that runs the server on ``port``."""

    @abc.abstractmethod
    async def _probe(self, port: int, within: float) -> None:
        """Raise :class:`ConnectError` unless the server on ``port`` answers within ``within`` s."""

    async def _after_ready(self) -> None:  # noqa: B027 - optional hook
        """Runs once the server answers (e.g. create a database)."""

    async def _cleanup(self) -> None:  # noqa: B027 - optional hook
        """Runs after the child has stopped, or a start failed; must be idempotent."""

    # -- internals -----------------------------------------------------------

    async def _spawn_until_ready(self, deadline: float) -> ChildProcess:
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or pick_free_port()
            child = ChildProcess(self._spec(port))
            self._child, self._port = child, port
            try:
                child.spawn()
                await self._await_ready(child, port, deadline)
                await self._after_ready()
            except _PortTakenError:
                await child.stop(grace=1.0)
                self._child = None
                if attempt == attempts:
                    raise self._port_error(port) from None
                logger.info("%s lost port %s to another process; retrying", self.label, port)
                continue
            except BaseException:
                await child.stop(grace=1.0)
                self._child = None
                raise
            return child
        raise AssertionError("unreachable")  # pragma: no cover

    def _port_error(self, port: int) -> ConfigError | EmbeddedServerError:
        if self._requested_port is not None:
            return ConfigError(
                self._port_setting,
                port,
                f"127.0.0.1:{port} is already in use{port_holder(port)}",
                f"Choose another port with {self._port_setting}, "
                f"or omit {self._port_setting} to use a free one.",
            )
        return EmbeddedServerError(
            f"{self.label} could not get a free port after {_PORT_ATTEMPTS} attempts "
            "(other processes took each one first). Retry, or pass a port."
        )

    async def _await_ready(self, child: ChildProcess, port: int, deadline: float) -> None:
        last_error: ConnectError | None = None
        while True:
            code = child.returncode
            if child.log_contains(*_ADDRESS_IN_USE):
                raise _PortTakenError
            if code is not None:
                raise self._error(f"exited during startup with {describe_exit(code)}", child)
            if child.listens_on(port):
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    await self._probe(port, min(_PROBE_TIMEOUT, remaining))
                except ConnectError as e:
                    last_error = e
                else:
                    return
            if time.monotonic() >= deadline:
                detail = f" (last check: {last_error})" if last_error else ""
                raise self._error(
                    f"did not answer within {self.start_timeout:.0f}s{detail}; "
                    "the machine may be overloaded: retry or raise the start timeout",
                    child,
                )
            await asyncio.sleep(_READY_POLL)

    async def _watch(self, child: ChildProcess) -> None:
        child.remember_descendants()
        code = await child.wait()
        if self._stopping:
            return
        error = self._error(f"exited unexpectedly with {describe_exit(code)}", child)
        self.failure = error
        logger.error("%s", error)
        for callback in self._callbacks:
            callback(error)
        self._scope.fail(error)

    def _error(self, what: str, child: ChildProcess) -> EmbeddedServerError:
        tail = child.log_tail() or "(empty)"
        return EmbeddedServerError(
            f"{self.label} (pid {child.pid}, port {self._port}) {what}. "
            f"Last lines of {self.log_path}:\n{tail}"
        )
