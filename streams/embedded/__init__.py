"""Real servers as child processes: Kafka-compatible broker (Tansu), PostgreSQL, Redis.

Importing this package starts and connects to nothing; the client libraries are
imported only when a check runs.
"""

from agentlog.streams.embedded.checks import check_kafka, check_postgres, check_redis, redact
from agentlog.streams.embedded.postgres import PostgresLauncher
from agentlog.streams.embedded.redis import RedisLauncher
from agentlog.streams.embedded.server import EmbeddedServer, FailureScope
from agentlog.streams.embedded.stack import EmbeddedOptions, EmbeddedStack
from agentlog.streams.embedded.tansu import TansuLauncher

__all__ = [
    "EmbeddedOptions",
    "EmbeddedServer",
    "EmbeddedStack",
    "FailureScope",
    "PostgresLauncher",
    "RedisLauncher",
    "TansuLauncher",
    "check_kafka",
    "check_postgres",
    "check_redis",
    "redact",
]
