"""Child processes that cannot outlive us: spawn, watch, stop, log tail, ports.

Every embedded server runs as a direct child of the agentlog process:

* ``prctl(PR_SET_PDEATHSIG)`` is set in ``preexec_fn``, so the kernel signals
  the child when its parent dies, even by ``SIGKILL``. ``preexec_fn`` runs after
  ``setuid``/``setgid`` (CPython applies ``user=``/``group=`` first), and the
  setting is cleared by credential changes, so setting it last makes it survive
  the switch to an unprivileged user. The death signal is tied to the *thread*
  that forked the child: spawn from a thread that lives as long as the child
  (the event loop's thread), never from ``asyncio.to_thread``.
* each child gets its own session (``start_new_session``), so a Ctrl-C in the
  terminal reaches only agentlog, which then stops the servers in order.
* stdout and stderr go to a log file; errors quote its tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from agentlog.errors import ConfigError, EmbeddedServerError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_POLL_INTERVAL = 0.1
_KILL_WAIT = 5.0
_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child process.

    Attributes:
        name: a label for logs and errors, e.g. ``"postgres"``.
        argv: the command line; ``argv[0]`` is an absolute path.
        log_path: file that receives the child's stdout and stderr (appended).
        env: the complete environment of the child (nothing is inherited).
        cwd: working directory, or None for ours.
        user: run as this system user (needs root), or None for ours.
        death_signal: what the kernel sends the child when we die.
        stop_signals: signals sent in turn by :meth:`ChildProcess.stop`, each
            followed by a wait of ``grace`` seconds; SIGKILL always comes last.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    death_signal: signal.Signals = signal.SIGKILL
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)


class ChildProcess:
    """One running child: spawned with a parent-death signal, stopped in escalating steps."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._descendants: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int | None:
        """The child's pid once spawned."""
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), or None while it runs."""
        return self._popen.poll() if self._popen else None

    def spawn(self) -> None:
        """Start the child. Call from the thread that will outlive it (see module doc).

        Raises:
            EmbeddedServerError: the executable could not be started.
        """
        if self._popen is not None:
            return
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        uid, gid = _user_ids(spec.user)
        with spec.log_path.open("ab") as log:
            self._log_offset = log.tell()
            try:
                self._popen = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(spec.env),
                    cwd=spec.cwd,
                    start_new_session=True,
                    preexec_fn=_death_signal_setter(spec.death_signal),  # noqa: PLW1509 - see module doc
                    user=uid,
                    group=gid,
                    extra_groups=None if uid is None else [],
                )
            except OSError as e:
                raise EmbeddedServerError(
                    f"cannot start {spec.name} ({spec.argv[0]}): {e}. "
                    "Reinstall agentlog's dependencies so the server binary exists."
                ) from e
        logger.debug("started %s pid=%s: %s", spec.name, self._popen.pid, " ".join(spec.argv))

    async def wait(self, within: float | None = None) -> int | None:
        """Wait up to ``within`` seconds (None: forever) for the child to exit.

        Returns:
            the exit status, or None if it still runs.
        """
        deadline = None if within is None else time.monotonic() + within
        while (code := self.returncode) is None and self._popen is not None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_POLL_INTERVAL)
        return code

    def remember_descendants(self) -> None:
        """Record the child's own children (postgres backends) so :meth:`stop` can reap them."""
        if self.pid is None:
            return
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.pid).children(recursive=True):
                self._descendants[proc.pid] = proc

    async def stop(self, grace: float) -> int | None:
        """Stop the child: each stop signal then up to ``grace`` s, then SIGKILL.

        Idempotent. Also kills descendants the child left behind. Returns the exit status.
        """
        if self._popen is None:
            return None
        self.remember_descendants()
        for sig in (*self.spec.stop_signals, signal.SIGKILL):
            if self.returncode is not None:
                break
            if sig is signal.SIGKILL:
                logger.warning(
                    "%s pid=%s ignored %s; killing it", self.spec.name, self.pid, sig.name
                )
            self._signal(sig)
            await self.wait(grace if sig is not signal.SIGKILL else _KILL_WAIT)
        await self._reap_descendants(grace)
        return self.returncode

    def kill_now(self) -> None:
        """SIGKILL the child at once, without waiting (for emergencies and ``atexit``)."""
        if self._popen is not None and self.returncode is None:
            self._signal(signal.SIGKILL)

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` lines this child wrote to its log."""
        return read_tail(self.spec.log_path, self._log_offset, lines)

    def log_contains(self, *needles: str) -> bool:
        """True when this child's log output so far contains any of ``needles``."""
        text = read_tail(self.spec.log_path, self._log_offset, lines=10_000, max_bytes=1 << 20)
        return any(n in text for n in needles)

    def listens_on(self, port: int) -> bool:
        """True when the child itself holds a listening TCP socket on ``port``."""
        if self.pid is None or self.returncode is not None:
            return False
        try:
            conns = psutil.Process(self.pid).net_connections(kind="tcp")
        except psutil.Error:
            return False
        return any(_listening_on(c, port) for c in conns)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError):
            self._popen.send_signal(sig)

    async def _reap_descendants(self, grace: float) -> None:
        alive = [p for p in self._descendants.values() if _alive(p)]
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_INTERVAL)
            alive = [p for p in alive if _alive(p)]
        for proc in alive:
            logger.warning("killing %s leftover pid=%s", self.spec.name, proc.pid)
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._descendants.clear()


def describe_exit(code: int | None) -> str:
    """``"exit code 3"`` or ``"signal SIGKILL"`` for a Popen return code."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def read_tail(path: Path, offset: int = 0, lines: int = 25, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of ``path`` after byte ``offset`` ('' if unreadable).

    Reads at most ``max_bytes`` from the end of the file.
    """
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def pick_free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, setting: str) -> None:
    """Fail fast when ``port`` on 127.0.0.1 cannot be bound.

    Raises:
        ConfigError: naming ``setting`` (e.g. ``--kafka-port``), the port, its holder and the fix.
    """
    if not 0 < port < 65536:
        raise ConfigError(setting, port, "not a TCP port", "Use a port in 1..65535.")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError as e:
            problem = (
                f"{_HOST}:{port} is already in use{port_holder(port)}"
                if e.errno == errno.EADDRINUSE
                else f"cannot bind {_HOST}:{port} ({e.strerror})"
            )
            raise ConfigError(
                setting,
                port,
                problem,
                f"Choose another port with {setting}, or omit {setting} to use a free one.",
            ) from None


def port_holder(port: int) -> str:
    """`` (held by pid N, name)`` for a listening TCP port, or '' when unknown."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ""
    for conn in conns:
        if _listening_on(conn, port) and conn.pid:
            with contextlib.suppress(psutil.Error):
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
            return f" (held by pid {conn.pid})"
    return ""


def child_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing of ours leaks into a server's configuration."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}
    env.update(extra)
    return env


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _listening_on(conn: Any, port: int) -> bool:
    return conn.status == psutil.CONN_LISTEN and getattr(conn.laddr, "port", None) == port


def _user_ids(user: str | None) -> tuple[int | None, int | None]:
    if user is None:
        return None, None
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal.restype = ctypes.c_void_p
    except (OSError, AttributeError):
        return None
    return libc


# Loaded once in the parent: the child between fork and exec must not dlopen.
_LIBC = _load_libc()
#: Dispositions a child must not inherit as "ignored" (as from a background shell, nohup).
_DEFAULT_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


def _death_signal_setter(sig: signal.Signals) -> Callable[[], None]:
    parent = os.getpid()
    libc = _LIBC
    number = int(sig)

    def set_death_signal() -> None:  # runs in the child, after setuid, before exec
        if libc is not None:
            if libc.prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0) != 0:
                os._exit(126)
            for default in _DEFAULT_SIGNALS:
                libc.signal(int(default), None)  # SIG_DFL; signal.signal needs the main thread
        # The parent may have died before prctl took effect: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(126)

    return set_death_signal
