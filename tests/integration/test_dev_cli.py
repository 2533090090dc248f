"""``agentlog dev`` as a user runs it: a subprocess, signals, dev.json, no orphans, clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import pytest

from agentlog.streams.embedded import check_kafka, check_postgres, check_redis

READY_TIMEOUT = 60.0
#: "Fails fast": a bad setting is reported within this many seconds (Python start included).
FAST = 15.0


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without AGENTLOG_* (so the test decides what is external)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env.update(extra)
    return env


class Dev:
    """One ``python -m agentlog dev`` subprocess with its output in files."""

    def __init__(self, tmp_path: Path, proc: asyncio.subprocess.Process) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.proc = proc

    @classmethod
    async def start(cls, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Dev:
        data_dir = tmp_path / "data"
        with (tmp_path / "dev.out").open("ab") as out, (tmp_path / "dev.err").open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentlog",
                "dev",
                "--data-dir",
                str(data_dir),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env or clean_env(),
            )
        return cls(tmp_path, proc)

    @property
    def stdout(self) -> str:
        return (self.tmp_path / "dev.out").read_text()

    @property
    def stderr(self) -> str:
        return (self.tmp_path / "dev.err").read_text()

    @property
    def info_path(self) -> Path:
        return self.data_dir / "dev.json"

    async def ready(self) -> dict[str, Any]:
        """dev.json, once written; fails with the output if the process exits first."""
        deadline = time.monotonic() + READY_TIMEOUT
        while (info := self._own_info()) is None:
            if self.proc.returncode is not None:
                pytest.fail(f"agentlog dev exited {self.proc.returncode}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"agentlog dev not ready in {READY_TIMEOUT}s:\n{self.stderr}")
            await asyncio.sleep(0.1)
        return info

    def _own_info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None
        return info if info.get("pid") == self.proc.pid else None

    async def exit_code(self, within: float = 30.0) -> int:
        async with asyncio.timeout(within):
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def server_processes(dev: Dev, info: dict[str, Any]) -> list[psutil.Process]:
    """The servers (from dev.json) and every descendant of agentlog dev, recorded while running."""
    pids = {entry["pid"] for entry in info["embedded"].values()}
    procs = {p.pid: p for p in psutil.Process(dev.proc.pid).children(recursive=True)}
    assert pids <= set(procs), f"dev.json pids {pids} are not children of agentlog dev"
    return list(procs.values())


async def wait_gone(procs: list[psutil.Process], within: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` runs; return the survivors."""
    deadline = time.monotonic() + within
    alive = procs
    while alive and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return alive


def processes_using(path: Path) -> list[psutil.Process]:
    """Processes whose command line or working directory mentions ``path``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(path) in text and proc.pid != os.getpid():
            found.append(proc)
    return found


async def assert_servers_answer(info: dict[str, Any]) -> None:
    await check_kafka(info["kafka_bootstrap"], within=10)
    await check_postgres(info["postgres_dsn"], within=10)
    await check_redis(info["redis_url"], within=10)
    await assert_api_answers(info["api_url"])


async def assert_api_answers(url: str) -> None:
    """The query API of agentlog dev serves the read models the projector keeps."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for path in ("/health", "/stats", "/workflows"):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
        assert (await client.get("/openapi.json")).json()["info"]["title"]


def api_port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_dev_runs_until_a_signal_then_stops_everything(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    dev = await Dev.start(tmp_path)
    try:
        info = await dev.ready()
        assert info["pid"] == dev.proc.pid
        assert set(info["embedded"]) == {"kafka", "postgres", "redis"}
        assert info["embedded"]["postgres"]["fresh"] is True
        assert info["postgres_dsn"].endswith("/agentlog")
        await assert_servers_answer(info)
        procs = server_processes(dev, info)
        out = dev.stdout
        assert "ready in " in out
        assert "memory-only" in out
        assert "fresh data directory" in out
        assert f"{info['api_url']}/docs" in out  # the URL is printed
        api_port = api_port_of(info["api_url"])
        dev.proc.send_signal(stop_signal)
        assert await dev.exit_code() == 0, dev.stderr
    finally:
        await dev.kill()
    assert not await wait_gone(procs, within=5)
    assert not is_listening(api_port)
    assert not dev.info_path.exists()
    assert "agentlog dev stopped" in dev.stdout
    assert "Traceback" not in dev.stderr


async def test_sigkill_of_dev_takes_its_servers_along_and_a_rerun_works(tmp_path: Path) -> None:
    dev = await Dev.start(tmp_path)
    try:
        info = await dev.ready()
        procs = server_processes(dev, info)
        dev.proc.kill()
        assert await dev.exit_code() == -signal.SIGKILL
        survivors = await wait_gone(procs, within=10)
        assert not survivors, [(p.pid, p.name()) for p in survivors]
    finally:
        await dev.kill()

    # The stale dev.json and lock of the killed run do not get in the way.
    assert json.loads(dev.info_path.read_text())["pid"] == dev.proc.pid
    again = await Dev.start(tmp_path)
    try:
        info = await again.ready()
        assert info["pid"] == again.proc.pid
        await assert_servers_answer(info)
        again.proc.send_signal(signal.SIGTERM)
        assert await again.exit_code() == 0, again.stderr
    finally:
        await again.kill()


@pytest.mark.parametrize(
    ("args", "env", "code", "names"),
    [
        (["--kafka", "127.0.0.1:1"], {}, 1, ["--kafka", "'127.0.0.1:1'"]),
        (
            [],
            {"AGENTLOG_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
            1,
            ["AGENTLOG_KAFKA_BOOTSTRAP", "127.0.0.1:1"],
        ),
        (
            ["--postgres", "postgresql://u:hunter2@127.0.0.1:1/x"],
            {},
            1,
            ["--postgres", "127.0.0.1:1"],
        ),
        (["--redis", "redis://127.0.0.1:1/0"], {}, 1, ["--redis", "redis://127.0.0.1:1/0"]),
        (["--kafka", "nonsense"], {}, 2, ["error: --kafka='nonsense'", "host:port"]),
        (["--postgres", "mysql://db/x"], {}, 2, ["error: --postgres='mysql://db/x'", "scheme"]),
        ([], {"AGENTLOG_PARTITIONS": "many"}, 2, ["error: AGENTLOG_PARTITIONS='many'"]),
    ],
)
async def test_bad_configuration_fails_fast_naming_the_setting_and_the_value(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, names: list[str]
) -> None:
    started = time.monotonic()
    dev = await Dev.start(tmp_path, *args, env=clean_env(**env))
    try:
        assert await dev.exit_code(within=FAST + 15) == code, dev.stderr
    finally:
        await dev.kill()
    elapsed = time.monotonic() - started
    assert elapsed < FAST, f"took {elapsed:.1f}s"
    err = dev.stderr
    for name in names:
        assert name in err
    assert "Traceback" not in err
    assert "hunter2" not in err + dev.stdout  # passwords are redacted
    assert not dev.info_path.exists()
    assert not await wait_gone(processes_using(dev.data_dir), within=5)


async def test_wrong_dsn_of_a_live_server_names_the_flag(tmp_path: Path, postgres_dsn: str) -> None:
    parts = urlsplit(postgres_dsn)
    wrong = urlunsplit(parts._replace(path="/no_such_database_here"))
    dev = await Dev.start(tmp_path, "--postgres", wrong)
    try:
        assert await dev.exit_code(within=FAST) == 1, dev.stderr
    finally:
        await dev.kill()
    assert "error: cannot connect to --postgres=" in dev.stderr
    assert "no_such_database_here" in dev.stderr
    assert not await wait_gone(processes_using(dev.data_dir), within=5)


async def test_a_port_in_use_fails_fast_naming_the_flag_and_the_port(
    tmp_path: Path, held_port: int
) -> None:
    started = time.monotonic()
    dev = await Dev.start(tmp_path, "--kafka-port", str(held_port))
    try:
        assert await dev.exit_code(within=FAST) == 2, dev.stderr
    finally:
        await dev.kill()
    assert time.monotonic() - started < FAST
    assert f"error: --kafka-port={held_port}: 127.0.0.1:{held_port} is already in use" in dev.stderr
    assert "Choose another port" in dev.stderr
    assert not processes_using(dev.data_dir)


async def test_help_teaches_and_a_missing_command_is_a_usage_error(tmp_path: Path) -> None:
    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentlog",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=clean_env(),
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, text = await run("dev", "--help")
    assert code == 0
    for words in ("memory-only", "examples:", "--kafka HOST:PORT", "--kafka-port", "dev.json"):
        assert words in text
    code, text = await run()
    assert code == 2
    assert "dev" in text


async def test_the_api_port_can_be_chosen_and_a_taken_one_is_named(
    tmp_path: Path, held_port: int
) -> None:
    port = pick_port()
    for name in ("chosen", "taken"):
        (tmp_path / name).mkdir()
    dev = await Dev.start(tmp_path / "chosen", "--api-port", str(port))
    try:
        info = await dev.ready()
        assert info["api_url"] == f"http://127.0.0.1:{port}"
        await assert_api_answers(info["api_url"])
        dev.proc.send_signal(signal.SIGTERM)
        assert await dev.exit_code() == 0, dev.stderr
    finally:
        await dev.kill()
    assert not is_listening(port)

    taken = await Dev.start(tmp_path / "taken", env=clean_env(AGENTLOG_API_PORT=str(held_port)))
    try:
        assert await taken.exit_code(within=READY_TIMEOUT) == 2, taken.stderr
    finally:
        await taken.kill()
    assert f"error: AGENTLOG_API_PORT={held_port}: 127.0.0.1:{held_port} is already in use" in (
        taken.stderr
    )
    assert "Traceback" not in taken.stderr
    assert not taken.info_path.exists()
    assert not await wait_gone(processes_using(taken.data_dir), within=5)


def pick_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
