"""One frozen ``Settings``, built once at the edge from ``AGENTLOG_*`` and flags."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentlog.errors import ConfigError

ENV_PREFIX = "AGENTLOG_"
#: Where ``agentlog api`` listens unless AGENTLOG_API_PORT / --port say otherwise.
DEFAULT_API_PORT = 8080
#: The producers' ``max_request_size`` (aiokafka's default): the bound of one record
#: (checked before sending) and of ``max_batch_bytes``.
MAX_REQUEST_BYTES = 1_048_576
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]*$")
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Client security passed through to aiokafka (``security_protocol``, ``sasl_*``, ``ssl``)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything agentlog reads from its environment, parsed and checked once.

    Build it with :meth:`from_env` at the edge (CLI, service entry point) and
    pass it down; nothing else reads ``os.environ``.
    """

    kafka_bootstrap: str | None = None
    postgres_dsn: str | None = None
    redis_url: str | None = None
    topic_prefix: str = "agentlog"
    partitions: int = 6
    replication_factor: int = 1
    #: Consumer fetch wait (ms); None: chosen per broker at connect
    #: (:func:`agentlog.streams.capabilities.fetch_wait_ms`).
    fetch_max_wait_ms: int | None = None
    linger_ms: int = 0
    #: Bytes one record batch may hold (the producer's ``max_batch_size``). Up to
    #: this, an ``enqueue_batch`` call's events for a partition go out as one batch:
    #: aiokafka puts one batch per partition into a request, one request in flight
    #: per broker, so a call split into several batches waits a produce round trip
    #: per extra batch (docs/decisions.md D17). Keep it at or below the brokers'
    #: ``message.max.bytes`` (Apache Kafka's default 1,048,588).
    max_batch_bytes: int = 1_000_000
    #: Generation-0 threshold of Python's garbage collector in agentlog's service
    #: processes (orchestrator, lock manager, agent pools): raised to this at their
    #: start, never lowered; 0 leaves Python's own (700). See agentlog.tuning.
    gc_threshold: int = 100_000
    #: Workflow deadline (ms) of every workflow whose spec sets none; None: none.
    #: Read by the orchestrator, and by ``agentlog verify``, which must decide alike.
    default_workflow_timeout_ms: int | None = None
    source: str = "agentlog"
    data_dir: Path = Path(".agentlog")
    log_level: str = "INFO"
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: PostgreSQL schema of the read models (projector, API, rebuild).
    projection_schema: str = "agentlog"
    #: When set, every API route requires ``Authorization: Bearer <token>``.
    api_token: str | None = field(default=None, repr=False)
    api_host: str = "127.0.0.1"
    #: None: :data:`DEFAULT_API_PORT` (``agentlog dev`` then takes a free port if it is taken).
    api_port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``AGENTLOG_*`` variables, then apply non-None ``overrides`` (from flags).

        Raises:
            ConfigError: naming the variable, its value and the fix.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        security: dict[str, Any] = {}
        for name, value in env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            key = name[len(ENV_PREFIX) :].lower()
            if key in _FIELDS:
                values[key] = _parse(name, key, value)
            elif key in _SECURITY_ENV:
                security[_SECURITY_ENV[key]] = value or None
        if security.get("protocol"):
            security["protocol"] = security["protocol"].upper()
        else:
            security.pop("protocol", None)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if security:
            values["kafka_security"] = KafkaSecurity(**security)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None fields replaced, validated."""
        changed = dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
        changed.validate()
        return changed

    def validate(self) -> None:
        """Check every value; raise :class:`ConfigError` on the first bad one."""
        if self.kafka_bootstrap is not None:
            check_bootstrap(self.kafka_bootstrap)
        if self.postgres_dsn is not None:
            check_url(
                "AGENTLOG_POSTGRES_DSN",
                self.postgres_dsn,
                ("postgresql", "postgres"),
                "postgresql://user:password@127.0.0.1:5432/agentlog",
            )
        if self.redis_url is not None:
            check_url(
                "AGENTLOG_REDIS_URL",
                self.redis_url,
                ("redis", "rediss", "unix"),
                "redis://127.0.0.1:6379/0",
            )
        if not _TOPIC_PREFIX_RE.match(self.topic_prefix) or len(self.topic_prefix) > 100:
            raise ConfigError(
                "AGENTLOG_TOPIC_PREFIX",
                self.topic_prefix,
                "a topic prefix may hold only letters, digits, '.', '_' and '-'",
                "Choose a prefix such as 'agentlog' or 'team-a.agentlog'.",
            )
        _check_range("AGENTLOG_PARTITIONS", self.partitions, 1, 10_000)
        _check_range("AGENTLOG_REPLICATION_FACTOR", self.replication_factor, 1, 32)
        if self.fetch_max_wait_ms is not None:
            _check_range("AGENTLOG_FETCH_MAX_WAIT_MS", self.fetch_max_wait_ms, 0, 60_000)
        _check_range("AGENTLOG_LINGER_MS", self.linger_ms, 0, 60_000)
        _check_range("AGENTLOG_MAX_BATCH_BYTES", self.max_batch_bytes, 16_384, MAX_REQUEST_BYTES)
        _check_range("AGENTLOG_GC_THRESHOLD", self.gc_threshold, 0, 10_000_000)
        if self.default_workflow_timeout_ms is not None:
            _check_range(
                "AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS",
                self.default_workflow_timeout_ms,
                1,
                10 * 365 * 86_400_000,
            )
        check_schema_name(self.projection_schema)
        if self.api_port is not None:
            _check_range("AGENTLOG_API_PORT", self.api_port, 1, 65_535)
        if not self.api_host:
            raise ConfigError(
                "AGENTLOG_API_HOST", self.api_host, "empty", "Use e.g. 127.0.0.1 or 0.0.0.0."
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(
                "AGENTLOG_LOG_LEVEL",
                self.log_level,
                "not a log level",
                "Use one of DEBUG, INFO, WARNING, ERROR, CRITICAL.",
            )
        sec = self.kafka_security
        if sec.protocol not in _SECURITY_PROTOCOLS:
            raise ConfigError(
                "AGENTLOG_KAFKA_SECURITY_PROTOCOL",
                sec.protocol,
                "not a Kafka security protocol",
                f"Use one of {', '.join(_SECURITY_PROTOCOLS)}.",
            )
        if sec.protocol.startswith("SASL") and sec.sasl_mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                "AGENTLOG_KAFKA_SASL_MECHANISM",
                sec.sasl_mechanism,
                f"{sec.protocol} needs a SASL mechanism",
                f"Use one of {', '.join(_SASL_MECHANISMS)}.",
            )

    def topic(self, name: str) -> str:
        """The full topic name for a catalogue name, e.g. ``requests`` -> ``agentlog.requests``."""
        return f"{self.topic_prefix}.{name}" if self.topic_prefix else name

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options for any aiokafka client (producer, consumer, admin)."""
        sec = self.kafka_security
        options: dict[str, Any] = {"security_protocol": sec.protocol}
        if sec.protocol.startswith("SASL"):
            options["sasl_mechanism"] = sec.sasl_mechanism
            options["sasl_plain_username"] = sec.sasl_username
            options["sasl_plain_password"] = sec.sasl_password
        if sec.protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=sec.ssl_cafile, certfile=sec.ssl_certfile, keyfile=sec.ssl_keyfile
            )
        return options


_FIELDS: dict[str, type] = {
    "kafka_bootstrap": str,
    "postgres_dsn": str,
    "redis_url": str,
    "topic_prefix": str,
    "partitions": int,
    "replication_factor": int,
    "fetch_max_wait_ms": int,
    "linger_ms": int,
    "max_batch_bytes": int,
    "gc_threshold": int,
    "default_workflow_timeout_ms": int,
    "source": str,
    "data_dir": Path,
    "log_level": str,
    "projection_schema": str,
    "api_token": str,
    "api_host": str,
    "api_port": int,
}
#: Variables whose empty value means "not set".
_EMPTY_IS_UNSET = (
    "kafka_bootstrap",
    "postgres_dsn",
    "redis_url",
    "api_token",
    "api_port",
    "default_workflow_timeout_ms",
    "fetch_max_wait_ms",
)
_SECURITY_ENV: dict[str, str] = {
    "kafka_security_protocol": "protocol",
    "kafka_sasl_mechanism": "sasl_mechanism",
    "kafka_sasl_username": "sasl_username",
    "kafka_sasl_password": "sasl_password",
    "kafka_ssl_cafile": "ssl_cafile",
    "kafka_ssl_certfile": "ssl_certfile",
    "kafka_ssl_keyfile": "ssl_keyfile",
}

#: Every variable ``Settings.from_env`` understands (compose.yaml is checked against it).
KNOWN_VARIABLES: frozenset[str] = frozenset(
    ENV_PREFIX + k.upper() for k in [*_FIELDS, *_SECURITY_ENV]
)


def _parse(name: str, key: str, raw: str) -> Any:
    kind = _FIELDS[key]
    if not raw and key in _EMPTY_IS_UNSET:
        return None
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(name, raw, "not a whole number", f"Set {name} to e.g. 6.") from None
    if kind is Path:
        return Path(raw)
    return raw


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(
            name, value, f"out of range {low}..{high}", f"Pick a value in {low}..{high}."
        )


def check_schema_name(name: str, setting: str = "AGENTLOG_PROJECTION_SCHEMA") -> str:
    """Return ``name`` if it can name a PostgreSQL schema unquoted, else raise ConfigError."""
    if not _SCHEMA_RE.match(name):
        raise ConfigError(
            setting,
            name,
            "a schema name must be 1-63 lowercase letters, digits or '_', not starting "
            "with a digit",
            "Use e.g. 'agentlog' or 'agentlog_shadow'.",
        )
    return name


def check_bootstrap(value: str) -> list[tuple[str, int]]:
    """Parse ``host:port[,host:port…]``; raise ConfigError naming AGENTLOG_KAFKA_BOOTSTRAP."""
    hosts: list[tuple[str, int]] = []
    for part in value.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                value,
                f"{part.strip()!r} is not host:port",
                "Use e.g. 127.0.0.1:9092 or broker1:9092,broker2:9092.",
            )
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def check_url(name: str, value: str, schemes: tuple[str, ...], example: str) -> None:
    """Raise ConfigError unless ``value`` is a URL with one of ``schemes``."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise ConfigError(name, value, f"not a valid URL ({e})", f"Use e.g. {example}.") from None
    if parts.scheme not in schemes:
        raise ConfigError(
            name, value, f"scheme must be one of {', '.join(schemes)}", f"Use e.g. {example}."
        )
