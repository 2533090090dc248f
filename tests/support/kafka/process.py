"""JVM child processes that cannot outlive the test process; ports; log tails.

* ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in ``preexec_fn``: the kernel kills the
  JVM when its parent dies, even by SIGKILL. The death signal is tied to the
  *thread* that forked the child, and our callers may be short-lived threads
  (``asyncio.to_thread`` workers exit when their loop closes). So every child
  is forked by one daemon thread that lives as long as the interpreter.
* each child gets its own session, so a Ctrl-C in the terminal reaches only
  pytest, whose fixtures then stop the brokers.
* stdout and stderr go to a log file, appended across restarts; errors quote
  the tail written since the latest start.

(``agentlog.streams.embedded.process`` solves the same problem for the asyncio
embedded stack; this copy is synchronous and owned by the tests.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
_HOME_PREFIX = "agentlog-kafka-"
_OWNER_FILE = "owner.pid"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log_path``; it dies when we die.

    Safe from any thread.
    """
    return _spawner.submit(lambda: _popen(argv, log_path, env))


def _popen(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None
) -> subprocess.Popen[bytes]:
    parent = os.getpid()

    def die_with_parent() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - see module doc
        )


class _Spawner:
    """One daemon thread that forks every child (see module doc)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], concurrent.futures.Future[object]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agentlog-kafka-spawner", daemon=True
                )
                self._thread.start()
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._jobs.put((job, future))
        result = future.result()
        assert isinstance(result, subprocess.Popen)
        return result

    def _run(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as e:  # handed to the caller, re-raised there
                future.set_exception(e)


_spawner = _Spawner()


def signal_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` unless the process has already exited."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


def terminate(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGCONT + SIGTERM, up to ``grace`` s, then SIGKILL; reaps it. Returns the exit status."""
    if process.poll() is None and grace > 0:
        signal_process(process, signal.SIGCONT)  # a paused JVM cannot act on SIGTERM
        signal_process(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.wait(grace)
    signal_process(process, signal.SIGKILL)
    return process.wait()


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that are free now.

    Chosen below the kernel's ephemeral range, so no client socket can take a
    port while its broker is down for a restart; a port another server takes
    between this check and the broker's bind shows up as "Address already in
    use" and the caller retries with new ports.
    """
    low = _ephemeral_low()
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(max(1024, low - 12000), low)
        if port not in ports and _bindable(port):
            ports.append(port)
    return ports


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def accepts(port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_from(path: Path, offset: int, max_bytes: int = 4 << 20) -> str:
    """The text of ``path`` from byte ``offset`` (at most the last ``max_bytes``)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - max_bytes))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    text = read_from(path, offset, max_bytes=256 << 10)
    return "\n".join(text.splitlines()[-lines:])


def make_home() -> Path:
    """A new private temporary folder for a cluster, marked with our pid.

    First removes the folders of earlier test processes that died without
    cleaning up (killed by SIGKILL, so neither ``finally`` nor ``atexit`` ran;
    their JVMs died with them).
    """
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{_HOME_PREFIX}*"):
        try:
            owner = int((old / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        if not _alive(owner):
            shutil.rmtree(old, ignore_errors=True)
    home = Path(tempfile.mkdtemp(prefix=_HOME_PREFIX, dir=root))
    (home / _OWNER_FILE).write_text(str(os.getpid()))
    return home


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
