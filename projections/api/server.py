"""The query API served by uvicorn inside this process (``agentlog dev``), with start/stop.

``agentlog api`` runs uvicorn in the foreground; ``agentlog dev`` needs it as
one more service among the orchestrator, the lock manager and the projector:
started, stopped and failing like them. :class:`ApiServer` binds the socket
itself (a port in use is a clear error, port 0 picks a free one) and leaves
the signals to its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from agentlog.errors import AgentlogError, ConfigError
from agentlog.projections.config import ProjectionSettings
from agentlog.settings import Settings

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0


class ApiServerError(AgentlogError):
    """The API server stopped on its own (see the cause)."""


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the owner (``agentlog dev``) handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """Serve the query API on ``host:port`` in the background of the running loop.

    Args:
        settings: the PostgreSQL DSN and the Kafka address (for the write routes).
        projection: schema and token; defaults to those of ``settings``.
        host: address to listen on (default ``projection.api_host``).
        port: port to listen on (default ``projection.api_port``; 0 picks a free one).
        port_setting: the flag or variable that chose the port, named in errors.
    """

    def __init__(
        self,
        settings: Settings,
        projection: ProjectionSettings | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        port_setting: str = "AGENTLOG_API_PORT",
    ) -> None:
        self.settings = settings
        self.projection = projection or ProjectionSettings.from_settings(settings)
        self.host = host or self.projection.api_host
        self.port = self.projection.api_port if port is None else port
        self.port_setting = port_setting
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` (the bound port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind, start serving and wait until uvicorn is up; idempotent.

        Raises:
            ConfigError: the port is in use or the address cannot be bound.
            ApiServerError: uvicorn did not start.
        """
        if self._task is not None:
            return
        from agentlog.projections.api import create_app

        sock = self._bind()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.settings, self.projection),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
            access_log=False,
            log_config=None,  # only the CLI configures logging handlers
            lifespan="on",
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="agentlog-api")
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while not server.started:
                    if self._task.done():
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            await self.stop()
            sock.close()
            raise ApiServerError(f"the API did not start within {_START_TIMEOUT_S:.0f}s") from None
        if not server.started:  # the asyncio server owns the socket once started
            await self.stop()
            sock.close()
            raise ApiServerError(f"the API on {self.url} stopped while starting; see the log")
        logger.info("query API on %s", self.url)

    async def stop(self) -> None:
        """Stop serving (open requests get a few seconds); idempotent."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT_S)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except (Exception, SystemExit) as e:  # noqa: BLE001 - already stopping; say why it ended
            logger.warning("the API server ended with %s: %s", type(e).__name__, e)

    async def wait(self) -> None:
        """Until the server stops by itself (it does not, unless it fails).

        Raises:
            ApiServerError: it stopped.
        """
        task = self._task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except (Exception, SystemExit) as e:
            raise ApiServerError(f"the API on {self.url} failed: {e}") from e
        raise ApiServerError(f"the API on {self.url} stopped")

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        ended = self._task is not None and self._task.done()
        await self.stop()
        if ended and et is None:
            raise ApiServerError(f"the API on {self.url} stopped by itself; see the log")

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(
                    self.port_setting,
                    self.port,
                    f"{self.host}:{self.port} is already in use",
                    "Choose another port, or stop what listens there.",
                ) from None
            raise ConfigError(
                "AGENTLOG_API_HOST",
                self.host,
                f"cannot listen on {self.host}:{self.port} ({e.strerror})",
                "Use an address of this machine, e.g. 127.0.0.1.",
            ) from None
        return sock
