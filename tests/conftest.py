"""Fixtures for every test: real servers (lazily), unique names, a task-leak guard, markers.

Servers: ``kafka_bootstrap``, ``postgres_dsn`` and ``redis_url`` are
session-scoped strings. Each comes from ``AGENTLOG_KAFKA_BOOTSTRAP`` /
``AGENTLOG_POSTGRES_DSN`` / ``AGENTLOG_REDIS_URL`` if set, else a Docker
container if an engine answers, else an embedded server (see
``tests/support/servers.py``). A server starts only when a test first asks.

Isolation: share servers, never names. Use ``topic_name`` / ``group_id`` (or
``unique_name`` as a base) so tests do not depend on each other or on order.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.support.servers import BROKERS, ServerPool

TESTS_DIR = Path(__file__).resolve().parent
#: Tests under tests/<folder>/ get the marker of that name.
_MARKER_BY_FOLDER = {"unit": "unit", "integration": "integration"}
#: How long tasks a test started may take to finish after its fixtures are torn down.
_TASK_GRACE_SECONDS = 1.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests under tests/unit ``unit`` and under tests/integration ``integration``."""
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        except (ValueError, IndexError):
            continue
        marker = _MARKER_BY_FOLDER.get(folder)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


# -- servers ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The session's servers; prefer the three address fixtures below."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    try:
        yield pool
    finally:
        pool.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--broker``: which Kafka-compatible brokers the integration tests run against."""
    parser.addoption(
        "--broker",
        default=os.environ.get("AGENTLOG_TEST_BROKER", "auto"),
        help=(
            "comma-separated brokers for tests that use kafka_bootstrap: auto (default: "
            "AGENTLOG_KAFKA_BOOTSTRAP, else Docker, else embedded Tansu), tansu, kafka "
            "(Apache Kafka KRaft from Maven Central jars), kafka-cluster (3 nodes), or all "
            "(= tansu,kafka,kafka-cluster) [AGENTLOG_TEST_BROKER]"
        ),
    )


def selected_brokers(config: pytest.Config) -> list[str]:
    """The brokers named by ``--broker``, validated."""
    raw = str(config.getoption("--broker"))
    names = list(BROKERS) if raw == "all" else [b.strip() for b in raw.split(",") if b.strip()]
    unknown = [b for b in names if b not in (*BROKERS, "auto")]
    if unknown or not names:
        raise pytest.UsageError(
            f"--broker={raw!r}: unknown broker {', '.join(unknown) or '(none)'}; "
            f"use auto, {', '.join(BROKERS)} or all, comma-separated"
        )
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a broker once per selected broker."""
    if "kafka_bootstrap" in metafunc.fixturenames:
        brokers = selected_brokers(metafunc.config)
        metafunc.parametrize("broker", brokers, indirect=True, scope="session", ids=brokers)


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> str:
    """The broker kind of this test's parametrization (see ``--broker``)."""
    return str(getattr(request, "param", "auto"))


@pytest.fixture(scope="session")
def kafka_bootstrap(server_pool: ServerPool, broker: str) -> str:
    """``host:port`` of a Kafka-compatible broker shared by the session (one per kind)."""
    from tests.support.kafka import KafkaUnavailable

    try:
        return server_pool.kafka_bootstrap("default" if broker == "auto" else broker)
    except KafkaUnavailable as e:
        pytest.skip(f"Apache Kafka cannot run here, {broker} tests skipped: {e}")


@pytest.fixture(scope="session")
def postgres_dsn(server_pool: ServerPool) -> str:
    """DSN of a PostgreSQL database shared by the session."""
    return server_pool.postgres_dsn()


@pytest.fixture(scope="session")
def redis_url(server_pool: ServerPool) -> str:
    """URL of a Redis server shared by the session."""
    return server_pool.redis_url()


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on the session's PostgreSQL (closed after the test)."""
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=25)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def rd(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the session's server (closed after the test)."""
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# -- unique names ---------------------------------------------------------------------


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """``<test-name>-<8 hex>``: safe in topic, group, table and key names."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_name(unique_name: str) -> str:
    """A topic name no other test uses."""
    return f"test.{unique_name}"


@pytest.fixture
def group_id(unique_name: str) -> str:
    """A consumer-group id no other test uses."""
    return f"test-group.{unique_name}"


# -- task-leak guard --------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running after its fixtures are torn down.

    Autouse fixtures are set up first and torn down last, so this runs after
    every other fixture of the test has cleaned up. It sees the test's own
    (function-scoped) loop, the default.
    """
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    deadline = asyncio.get_running_loop().time() + _TASK_GRACE_SECONDS
    while True:
        leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not leaked or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.02)
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.wait(leaked, timeout=5)
        names = ", ".join(f"{t.get_name()} ({t.get_coro()!r})" for t in leaked)
        pytest.fail(f"the test leaked {len(leaked)} asyncio task(s): {names}", pytrace=False)
