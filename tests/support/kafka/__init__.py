"""Real Apache Kafka (KRaft) for the tests, run from its Maven Central jars.

See docs/testing-kafka.md. Nothing here starts anything at import time.
"""

from .broker import KafkaBroker, KafkaCluster, start_cluster, start_single
from .jars import (
    KAFKA_VERSION,
    KafkaJarsUnavailable,
    KafkaUnavailable,
    ensure_kafka_jars,
    kafka_version,
)
from .node import KafkaNode, KafkaStartError

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaCluster",
    "KafkaJarsUnavailable",
    "KafkaNode",
    "KafkaStartError",
    "KafkaUnavailable",
    "ensure_kafka_jars",
    "kafka_version",
    "start_cluster",
    "start_single",
]
