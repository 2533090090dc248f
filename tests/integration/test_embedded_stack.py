"""The embedded stack: real Tansu, PostgreSQL and Redis as child processes of the test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from agentlog.errors import ConfigError, ConnectError, EmbeddedServerError
from agentlog.settings import Settings
from agentlog.streams.embedded import (
    EmbeddedOptions,
    EmbeddedStack,
    PostgresLauncher,
    RedisLauncher,
    TansuLauncher,
)

#: The acceptance bound for a cold start of all three servers.
STARTUP_BUDGET_SECONDS = 30.0


def embedded_only(data_dir: Path) -> Settings:
    """Settings that embed all three servers, whatever AGENTLOG_* the environment holds."""
    return Settings(data_dir=data_dir)


def process_tree(stack: EmbeddedStack) -> list[psutil.Process]:
    """Every process of the running stack: the servers and their children (postgres backends)."""
    procs = []
    for server in stack.servers.values():
        assert server.pid is not None
        root = psutil.Process(server.pid)
        procs += [root, *root.children(recursive=True)]
    return procs


def assert_all_gone(procs: list[psutil.Process], within: float = 10.0) -> None:
    _, alive = psutil.wait_procs(procs, timeout=within)
    assert not alive, f"still running: {[(p.pid, p.name()) for p in alive]}"


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def kafka_round_trip(bootstrap: str, topic: str, group: str) -> list[bytes]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"message-{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        async with asyncio.timeout(20):
            while len(values) < 3:
                batches = await consumer.getmany(timeout_ms=200)
                values += [r.value for records in batches.values() for r in records if r.value]
        return values
    finally:
        await consumer.stop()


async def test_stack_starts_serves_and_stops_without_leftovers(
    tmp_path: Path, topic_name: str, group_id: str
) -> None:
    started = time.monotonic()
    async with EmbeddedStack(embedded_only(tmp_path)) as stack:
        elapsed = time.monotonic() - started
        print(f"embedded stack ready in {elapsed:.2f}s (stack says {stack.startup_seconds:.2f}s)")
        assert elapsed < STARTUP_BUDGET_SECONDS
        assert set(stack.servers) == {"kafka", "postgres", "redis"}
        assert stack.bootstrap.startswith("127.0.0.1:")

        values = await kafka_round_trip(stack.bootstrap, topic_name, group_id)
        assert values == [b"message-0", b"message-1", b"message-2"]

        conn = await asyncpg.connect(stack.dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT current_database()") == "agentlog"
        finally:
            await conn.close()

        redis = Redis.from_url(stack.redis_url)
        try:
            assert await redis.ping()
        finally:
            await redis.aclose()

        info = stack.describe()
        assert info["postgres"]["fresh"] is True
        assert {Path(i["log"]).name for i in info.values()} == {
            "kafka.log",
            "postgres.log",
            "redis.log",
        }
        procs = process_tree(stack)
        assert len(procs) > 3  # the postgres backends count too
    assert_all_gone(procs)
    assert all(not server.running for server in stack.servers.values())


async def test_a_child_killed_from_outside_surfaces_out_of_async_with(tmp_path: Path) -> None:
    stack = EmbeddedStack(embedded_only(tmp_path))
    seen: dict[str, object] = {}

    async def use_stack_until_redis_dies() -> None:
        async with stack:
            redis_pid = stack.servers["redis"].pid
            assert redis_pid is not None
            seen.update(pid=redis_pid, procs=process_tree(stack))
            os.kill(redis_pid, signal.SIGKILL)
            await asyncio.sleep(30)  # interrupted by the watcher long before this

    started = time.monotonic()
    with pytest.raises(EmbeddedServerError) as caught:
        await use_stack_until_redis_dies()
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert f"Redis (pid {seen['pid']}" in message
    assert "exited unexpectedly with signal SIGKILL" in message
    assert stack.failure is caught.value
    assert_all_gone(seen["procs"])  # type: ignore[arg-type]


async def test_start_and_stop_are_idempotent_and_the_data_dir_is_locked(tmp_path: Path) -> None:
    stack = EmbeddedStack(embedded_only(tmp_path))
    await stack.start()
    try:
        await stack.start()
        other = EmbeddedStack(embedded_only(tmp_path))
        with pytest.raises(ConfigError, match="in use by pid"):
            await other.start()
    finally:
        await stack.stop()
        await stack.stop()
    with pytest.raises(EmbeddedServerError, match="not running"):
        _ = stack.bootstrap


async def test_postgres_is_fresh_with_an_embedded_broker_and_kept_otherwise(tmp_path: Path) -> None:
    async def has_marker(fresh: bool, create: bool) -> bool:
        async with PostgresLauncher(tmp_path, fresh=fresh) as pg:
            conn = await asyncpg.connect(pg.dsn)
            try:
                if create:
                    await conn.execute("CREATE TABLE marker (id int)")
                found = await conn.fetchval("SELECT to_regclass('marker') IS NOT NULL")
                return bool(found)
            finally:
                await conn.close()

    assert await has_marker(fresh=False, create=True)
    assert await has_marker(fresh=False, create=False)  # kept across restarts
    assert not await has_marker(fresh=True, create=False)  # a fresh cluster forgets it
    assert not await has_marker(fresh=True, create=False)  # and is thrown away on stop
    # The stack's choice: fresh with the memory-only broker, kept with an external one.
    assert EmbeddedStack(embedded_only(tmp_path)).fresh_postgres
    assert not EmbeddedStack(Settings(data_dir=tmp_path, kafka_bootstrap="h:9092")).fresh_postgres


async def test_a_requested_port_in_use_fails_fast_naming_the_flag(
    tmp_path: Path, held_port: int
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        await EmbeddedStack(embedded_only(tmp_path), EmbeddedOptions(kafka_port=held_port)).start()
    assert time.monotonic() - started < 5
    assert caught.value.setting == "--kafka-port"
    assert f"127.0.0.1:{held_port} is already in use" in str(caught.value)
    for launcher in (
        RedisLauncher(tmp_path, port=held_port),
        TansuLauncher(tmp_path, port=held_port),
    ):
        with pytest.raises(ConfigError, match=str(held_port)):
            await launcher.start()
        assert launcher.pid is None


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("kafka_bootstrap", "127.0.0.1:1", "AGENTLOG_KAFKA_BOOTSTRAP"),
        (
            "postgres_dsn",
            "postgresql://agentlog:secret@127.0.0.1:1/agentlog",
            "AGENTLOG_POSTGRES_DSN",
        ),
        ("redis_url", "redis://127.0.0.1:1/0", "AGENTLOG_REDIS_URL"),
    ],
)
async def test_an_unreachable_external_server_fails_fast_naming_the_setting(
    tmp_path: Path, field: str, value: str, setting: str
) -> None:
    # The other two are embedded and start meanwhile: the first failure cancels them.
    stack = EmbeddedStack(Settings(data_dir=tmp_path, **{field: value}))
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        await stack.start()
    assert time.monotonic() - started < 10
    assert caught.value.setting == setting
    assert "127.0.0.1:1" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert all(not server.running for server in stack.servers.values())
