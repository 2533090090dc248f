"""One Kafka node (combined KRaft controller + broker) as a JVM child process."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

from agentlog.errors import AgentlogError

from .config import READY_LINE, NodeSpec, java_argv
from .process import accepts, read_from, signal_process, spawn, tail, terminate

logger = logging.getLogger(__name__)

_POLL = 0.05
_PORT_TAKEN = "Address already in use"


class KafkaStartError(AgentlogError):
    """A Kafka node did not format or start; the message quotes its log.

    Attributes:
        port_taken: the node could not bind a port (another server took it).
    """

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        self.port_taken = port_taken
        super().__init__(message)


class KafkaNode:
    """A node's JVM: format, launch, wait until serving, signal, stop.

    Every method is safe to call from any thread.
    """

    def __init__(self, spec: NodeSpec, java: str, jars: Path, heap: str) -> None:
        self.spec = spec
        self._java = java
        self._jars = jars
        self._heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self._pids: list[int] = []
        self._log_offset = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of this node's client listener."""
        return self.spec.bootstrap

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid, or None before the first launch."""
        return self._process.pid if self._process else None

    @property
    def pids(self) -> list[int]:
        """Pids of every broker JVM this node has launched, oldest first."""
        return list(self._pids)

    @property
    def running(self) -> bool:
        """True while the broker JVM exists (paused counts as running)."""
        return self._process is not None and self._process.poll() is None

    def format(self, cluster_id: str, deadline: float) -> None:
        """Format the data folder for ``cluster_id`` (``kafka.tools.StorageTool``).

        Raises:
            KafkaStartError: the tool failed or did not finish by ``deadline``.
        """
        argv = java_argv(
            self._java,
            self._jars,
            self.spec,
            "128m",
            [
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.spec.properties),
            ],
        )
        offset = _size(self.spec.log_path)
        process = spawn(argv, self.spec.log_path)
        try:
            code = process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            terminate(process, 0)
            code = None
        if code != 0:
            raise KafkaStartError(
                f"formatting Kafka node {self.spec.node_id} storage failed (exit {code}); "
                f"its log ends:\n{tail(self.spec.log_path, offset)}"
            )

    def launch(self) -> None:
        """Start the broker JVM (if not running). Does not wait; see :meth:`wait_ready`."""
        with self._lock:
            if self._closed:
                raise KafkaStartError(f"Kafka node {self.spec.node_id} was stopped for good")
            if self.running:
                return
            argv = java_argv(
                self._java,
                self._jars,
                self.spec,
                self._heap,
                ["kafka.Kafka", str(self.spec.properties)],
            )
            self._log_offset = _size(self.spec.log_path)
            self._process = spawn(argv, self.spec.log_path)
            self._pids.append(self._process.pid)
        logger.debug("started Kafka node %s pid=%s", self.spec.node_id, self._process.pid)

    def wait_ready(self, deadline: float) -> None:
        """Wait until the node serves (see :meth:`ready`).

        Raises:
            KafkaStartError: the JVM exited, or was not ready by ``deadline``
                (it is then killed).
        """
        wait_all_ready([self], deadline)

    def ready(self) -> bool:
        """True once the JVM logged that it serves and its port accepts connections.

        Raises:
            KafkaStartError: the JVM has exited.
        """
        process = self._process
        assert process is not None, "launch() first"
        seen = read_from(self.spec.log_path, self._log_offset)
        if READY_LINE in seen and accepts(self.spec.port):
            return True
        if (code := process.poll()) is not None:
            raise self._start_error(f"exited with status {code}", seen)
        return False

    def give_up(self) -> KafkaStartError:
        """Kill a node that is not ready in time; the error to raise."""
        if self._process is not None:
            terminate(self._process, 0)
        return self._start_error(
            "was not ready in time", read_from(self.spec.log_path, self._log_offset)
        )

    def _start_error(self, problem: str, seen: str) -> KafkaStartError:
        return KafkaStartError(
            f"Kafka node {self.spec.node_id} ({self.bootstrap}) {problem}; its log ends:\n"
            f"{self.log_tail()}",
            port_taken=_PORT_TAKEN in seen,
        )

    def kill(self) -> None:
        """SIGKILL the broker JVM and reap it (a crash: no controlled shutdown)."""
        if self._process is not None:
            terminate(self._process, 0)

    def pause(self) -> None:
        """SIGSTOP: the JVM freezes (no heartbeats, no replies) until :meth:`resume`.

        Returns once the kernel reports the process stopped.
        """
        if self._process is not None:
            signal_process(self._process, signal.SIGSTOP)
            self._await_state(stopped=True)

    def resume(self) -> None:
        """SIGCONT a paused JVM; returns once it runs again."""
        if self._process is not None:
            signal_process(self._process, signal.SIGCONT)
            self._await_state(stopped=False)

    def _await_state(self, *, stopped: bool, within: float = 5.0) -> None:
        # Signals are delivered asynchronously: wait until every thread has stopped
        # (or resumed), so a test's next step really meets a frozen (or live) node.
        assert self._process is not None
        deadline = time.monotonic() + within
        while self._process.poll() is None and time.monotonic() < deadline:
            try:
                status = psutil.Process(self._process.pid).status()
            except psutil.Error:
                return
            if (status == psutil.STATUS_STOPPED) == stopped:
                return
            time.sleep(0.01)

    def begin_stop(self, *, final: bool) -> None:
        """Ask the JVM to shut down (SIGCONT + SIGTERM) without waiting.

        Args:
            final: refuse any later :meth:`launch` (the cluster is closing).
        """
        with self._lock:
            self._closed = self._closed or final
            if self._process is not None:
                signal_process(self._process, signal.SIGCONT)
                signal_process(self._process, signal.SIGTERM)

    def finish_stop(self, deadline: float) -> None:
        """Wait for the JVM to exit until ``deadline``, then SIGKILL it; reaps it."""
        if self._process is not None:
            terminate(self._process, max(0.0, deadline - time.monotonic()))

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the node's JVM logged since its latest launch."""
        return tail(self.spec.log_path, self._log_offset, lines)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_all_ready(nodes: list[KafkaNode], deadline: float) -> None:
    """Wait until every node serves; fail as soon as one exits.

    Raises:
        KafkaStartError: a node exited, or one was not ready by ``deadline``.
    """
    waiting = list(nodes)
    while waiting:
        waiting = [node for node in waiting if not node.ready()]
        if waiting and time.monotonic() >= deadline:
            raise waiting[0].give_up()
        if waiting:
            time.sleep(_POLL)
