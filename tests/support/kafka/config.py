"""The files a test broker node runs with: ``server.properties``, log4j 2 config, JVM flags."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .process import HOST

READY_LINE = "Kafka Server started"
"""Logged by ``kafka.server.KafkaRaftServer`` once the broker is unfenced and serving."""

JVM_FLAGS: tuple[str, ...] = (
    "-Xms64m",
    # Two cores shared by the whole suite: one GC thread, no C2 compiler threads.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Addresses and folders of one combined controller+broker node."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def data_dir(self) -> Path:
        """``log.dirs`` (and the KRaft metadata log)."""
        return self.home / "data"

    @property
    def properties(self) -> Path:
        """The node's ``server.properties``."""
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        """stdout + stderr of the node's JVMs (format and broker)."""
        return self.home / "kafka.log"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the client listener."""
        return f"{HOST}:{self.port}"


def kafka_uuid() -> str:
    """A random id in Kafka's form (URL-safe base64, no padding), as ``Uuid.randomUuid``."""
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka's tools reject ids that look like flags
            return text


def cluster_properties(replicas: int) -> dict[str, str]:
    """Broker settings shared by every node of a cluster of ``replicas`` nodes."""
    min_isr = str(min(2, replicas))
    rf = str(replicas)
    props = {
        "process.roles": "broker,controller",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        # Topics are created explicitly, as in compose.yaml; a typo fails loudly.
        "auto.create.topics.enable": "false",
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Internal topics are created on first use: 10 partitions instead of 50 each
        # make the first consumer group or transaction seconds faster.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        # Lean threads and memory: tests, two cores, several JVMs.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(8 << 20),
    }
    if replicas > 1:
        # A SIGKILLed broker is fenced (and leaves every ISR) after 6 s, not 9 s.
        props |= {"broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000"}
    return props


def write_node_files(
    node: NodeSpec,
    voters: Sequence[NodeSpec],
    settings: Mapping[str, str],
    log_level: str,
) -> None:
    """Write ``server.properties`` and ``log4j2.properties`` into ``node.home``."""
    node.home.mkdir(parents=True, exist_ok=True)
    props = {
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(
            f"{v.node_id}@{HOST}:{v.controller_port}" for v in voters
        ),
        "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
        "log.dirs": str(node.data_dir),
        **settings,
    }
    node.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (node.home / "log4j2.properties").write_text(_log4j2(log_level))


def _log4j2(level: str) -> str:
    # The lifecycle loggers stay at INFO so the ready line and the start-up steps
    # are in the log whatever the root level.
    return "\n".join(
        [
            "status = warn",
            "appender.out.type = Console",
            "appender.out.name = out",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            f"rootLogger.level = {level}",
            "rootLogger.appenderRef.out.ref = out",
            "logger.raft.name = kafka.server.KafkaRaftServer",
            "logger.raft.level = INFO",
            "logger.broker.name = kafka.server.BrokerServer",
            "logger.broker.level = INFO",
            "logger.lifecycle.name = kafka.server.BrokerLifecycleManager",
            "logger.lifecycle.level = INFO",
            "",
        ]
    )


def log_level() -> str:
    """Root log level of the brokers: ``$AGENTLOG_KAFKA_LOG_LEVEL`` or WARN."""
    return os.environ.get("AGENTLOG_KAFKA_LOG_LEVEL", "WARN").upper()


def java_argv(java: str, jars: Path, node: NodeSpec, heap: str, main: Sequence[str]) -> list[str]:
    """The command line of a JVM running ``main`` (class and arguments) for ``node``."""
    return [
        java,
        f"-Xmx{heap}",
        *JVM_FLAGS,
        f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node.home}",
        "-cp",
        f"{jars}/*",
        *main,
    ]
