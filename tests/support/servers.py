"""Real servers for the test session: from the environment, Docker, or embedded.

For each of Kafka, PostgreSQL and Redis, the first that applies wins:

1. an address in ``AGENTLOG_KAFKA_BOOTSTRAP`` / ``AGENTLOG_POSTGRES_DSN`` /
   ``AGENTLOG_REDIS_URL`` (checked to answer, so a wrong one fails fast);
2. a testcontainers container, when a Docker engine answers;
3. the embedded launchers (Tansu, PostgreSQL, Redis as child processes).

Nothing starts until a test asks for it. Embedded servers are started and
watched from one event loop in a background thread that lives as long as the
session: the servers' parent-death signal is tied to the thread that spawned
them, and fixtures stay independent of pytest-asyncio's loop scopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from agentlog.settings import Settings
from agentlog.streams.embedded import (
    EmbeddedServer,
    PostgresLauncher,
    RedisLauncher,
    TansuLauncher,
    check_kafka,
    check_postgres,
    check_redis,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds an embedded server may take to start on a busy 2-core CI machine.
START_TIMEOUT = 60.0
#: Seconds an address from the environment has to answer.
CONNECT_TIMEOUT = 10.0


class LoopThread:
    """An asyncio event loop running in a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agentlog-test-servers", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the thread's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def close(self) -> None:
        """Cancel what is left, stop the loop and join the thread."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.run(_cancel_all(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)


def docker_available() -> bool:
    """True when a Docker engine answers a ping within a few seconds (cheap when none exists)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as e:  # any failure means "no usable engine"
        logger.info("no usable Docker engine: %s", e)
        return False


#: The brokers ``--broker`` can select.
BROKERS = ("tansu", "kafka", "kafka-cluster")


class ServerPool:
    """Lazily provides one Kafka, PostgreSQL and Redis address for the whole session.

    Args:
        data_dir: where embedded servers keep logs and data.
        environ: the environment to read addresses from (default ``os.environ``).
    """

    def __init__(self, data_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self._environ = os.environ if environ is None else environ
        self._settings: Settings | None = None
        self._loop: LoopThread | None = None
        self._lock = threading.Lock()
        self._addresses: dict[str, str] = {}
        self._failures: dict[str, BaseException] = {}
        self._embedded: list[EmbeddedServer] = []
        self._containers: list[Any] = []
        self._jvms: list[Any] = []  # Apache Kafka brokers/clusters (tests.support.kafka)
        self._docker: bool | None = None
        #: Where each server came from: ``environment``, ``docker`` or ``embedded``.
        self.sources: dict[str, str] = {}

    def kafka_bootstrap(self, broker: str = "default") -> str:
        """Bootstrap servers of a Kafka-compatible broker.

        Args:
            broker: ``default`` (environment, else Docker, else embedded Tansu),
                ``tansu`` (embedded), ``kafka`` (Apache Kafka, one KRaft node from
                Maven Central jars) or ``kafka-cluster`` (three KRaft nodes).

        Raises:
            KafkaUnavailable: Apache Kafka cannot be run here (no Java/Maven/jars).
        """
        if broker == "default":
            return self._get("kafka", self._kafka)
        if broker == "tansu":
            return self._get("kafka:tansu", self._tansu)
        if broker in ("kafka", "kafka-cluster"):
            return self._get(f"kafka:{broker}", lambda: self._apache_kafka(broker))
        raise ValueError(f"unknown broker {broker!r}; use one of {', '.join(BROKERS)}")

    def postgres_dsn(self) -> str:
        """DSN of a PostgreSQL database the tests may use."""
        return self._get("postgres", self._postgres)

    def redis_url(self) -> str:
        """URL of a Redis server."""
        return self._get("redis", self._redis)

    def close(self) -> None:
        """Stop every embedded server and container this pool started."""
        if self._loop is not None:
            for server in reversed(self._embedded):
                try:
                    self._loop.run(server.stop(), timeout=60)
                except Exception:
                    logger.exception("stopping %s failed", server.label)
            self._loop.close()
            self._loop = None
        for container in reversed(self._containers):
            with contextlib.suppress(Exception):
                container.stop()
        for jvm in reversed(self._jvms):
            try:
                jvm.stop()
            except Exception:
                logger.exception("stopping %r failed", jvm)
        self._embedded.clear()
        self._containers.clear()
        self._jvms.clear()

    # -- internals -----------------------------------------------------------

    def _get(self, kind: str, provide: Callable[[], str]) -> str:
        with self._lock:
            if kind in self._failures:  # fail every later test at once, not after a timeout
                raise self._failures[kind]
            if kind not in self._addresses:
                try:
                    self._addresses[kind] = provide()
                except Exception as e:
                    self._failures[kind] = e
                    raise
            return self._addresses[kind]

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env(self._environ)
        return self._settings

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop.run(coro)

    def _use_docker(self) -> bool:
        if self._docker is None:
            self._docker = docker_available()
        return self._docker

    def _start(self, server: EmbeddedServer) -> None:
        self._embedded.append(server)
        self._run(server.start())
        self.sources[server.kind] = "embedded"

    def _kafka(self) -> str:
        if (bootstrap := self.settings.kafka_bootstrap) is not None:
            self._run(check_kafka(bootstrap, within=CONNECT_TIMEOUT))
            self.sources["kafka"] = "environment"
            return bootstrap
        if self._use_docker():
            from testcontainers.community.kafka import KafkaContainer

            kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
            self._containers.append(kafka.start())
            self.sources["kafka"] = "docker"
            return str(kafka.get_bootstrap_server())
        return self._tansu()

    def _tansu(self) -> str:
        broker = TansuLauncher(self.data_dir / "tansu", start_timeout=START_TIMEOUT)
        self._start(broker)
        return broker.bootstrap

    def _apache_kafka(self, broker: str) -> str:
        from tests.support.kafka import start_cluster, start_single

        server = start_cluster(3) if broker == "kafka-cluster" else start_single()
        self._jvms.append(server)
        self.sources[f"kafka:{broker}"] = "embedded"
        return str(server.bootstrap)

    def _postgres(self) -> str:
        if (dsn := self.settings.postgres_dsn) is not None:
            self._run(check_postgres(dsn, within=CONNECT_TIMEOUT))
            self.sources["postgres"] = "environment"
            return dsn
        if self._use_docker():
            from testcontainers.community.postgres import PostgresContainer

            pg = PostgresContainer(
                "postgres:17-alpine", username="agentlog", password="agentlog", dbname="agentlog"
            )
            self._containers.append(pg.start())
            self.sources["postgres"] = "docker"
            return str(pg.get_connection_url(driver=None))
        server = PostgresLauncher(self.data_dir, fresh=True, start_timeout=START_TIMEOUT)
        self._start(server)
        return server.dsn

    def _redis(self) -> str:
        if (url := self.settings.redis_url) is not None:
            self._run(check_redis(url, within=CONNECT_TIMEOUT))
            self.sources["redis"] = "environment"
            return url
        if self._use_docker():
            from testcontainers.community.redis import RedisContainer

            redis = RedisContainer("redis:7-alpine")
            self._containers.append(redis.start())
            self.sources["redis"] = "docker"
            return f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        server = RedisLauncher(self.data_dir, start_timeout=START_TIMEOUT)
        self._start(server)
        return server.url
