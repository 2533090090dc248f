"""The topic catalogue and idempotent topic creation."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from agentlog.errors import ConfigError, ConnectError
from agentlog.schemas.events import EVENT_COPIES, EVENT_TOPIC
from agentlog.settings import Settings

logger = logging.getLogger(__name__)

_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOPIC_ALREADY_EXISTS = 36
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the catalogue.

    Attributes:
        name: the catalogue name (``requests``); the full name adds the prefix.
        key: what the record key is.
        events: the event types allowed on the topic; any other type is dead-lettered.
        compacted: log compaction instead of time retention.
        copartitioned: must have the same partition count as the other co-partitioned topics.
        retained: kept forever (``retention.ms=-1``): the topic is the state of
            record that recovery folds from offset 0 (the journal: workflows;
            locks: fencing tokens must never restart).
    """

    name: str
    key: str
    events: frozenset[str]
    compacted: bool = False
    copartitioned: bool = False
    retained: bool = False


def _spec(name: str, key: str, **kw: bool) -> TopicSpec:
    home = {e for e, family in EVENT_TOPIC.items() if family == name}
    copies = {e for e, families in EVENT_COPIES.items() if name in families}
    return TopicSpec(name, key, frozenset(home | copies), **kw)


REQUESTS = _spec("requests", "workflow_id", copartitioned=True)
JOURNAL = _spec("journal", "workflow_id", copartitioned=True, retained=True)
RESPONSES = _spec("responses", "workflow_id", copartitioned=True)
LOCKS = _spec("locks", "resource", retained=True)
CACHE = _spec("cache", "agent_id")
AGENTS = _spec("agents", "agent_id", compacted=True)
DEADLETTER = _spec("deadletter", "original key")
TASKS_EVENTS = _spec("tasks", "workflow_id").events

#: The fixed topics; ``tasks.<agent-kind>`` topics are made per kind by :func:`tasks_topic`.
CATALOGUE: tuple[TopicSpec, ...] = (REQUESTS, JOURNAL, RESPONSES, LOCKS, CACHE, AGENTS, DEADLETTER)


def tasks_topic(kind: str) -> TopicSpec:
    """The spec of ``tasks.<kind>``; raise ConfigError for a kind that cannot name a topic."""
    if not _KIND_RE.match(kind):
        raise ConfigError(
            "agent kind",
            kind,
            "must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit",
            "Rename the agent kind, e.g. 'code-review'.",
        )
    return TopicSpec(f"tasks.{kind}", "workflow_id", TASKS_EVENTS)


def spec_for(settings: Settings, full_name: str) -> TopicSpec | None:
    """The catalogue entry of a full topic name, or None for a foreign topic."""
    prefix = f"{settings.topic_prefix}." if settings.topic_prefix else ""
    if not full_name.startswith(prefix):
        return None
    name = full_name[len(prefix) :]
    if name.startswith("tasks."):
        return tasks_topic(name[len("tasks.") :])
    return next((spec for spec in CATALOGUE if spec.name == name), None)


def new_topic(settings: Settings, spec: TopicSpec) -> NewTopic:
    """The aiokafka ``NewTopic`` for a spec under the given settings."""
    configs = {"cleanup.policy": "compact"} if spec.compacted else {}
    if spec.retained:
        configs["retention.ms"] = "-1"
    return NewTopic(
        settings.topic(spec.name),
        settings.partitions,
        settings.replication_factor,
        topic_configs=configs,
    )


async def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = CATALOGUE
) -> dict[str, bool]:
    """Create the topics that are missing; leave existing ones alone.

    Returns:
        full topic name -> True if this call created it, False if it existed.

    Raises:
        ConnectError: the broker cannot be reached (names AGENTLOG_KAFKA_BOOTSTRAP).
        ConfigError: a co-partitioned topic exists with another partition count.
    """
    wanted = {settings.topic(spec.name): spec for spec in specs}
    admin = admin_client(settings)
    await _start_admin(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [new_topic(settings, s) for n, s in wanted.items() if n not in existing]
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, message in _topic_errors(response):
                if code == 0:
                    created.add(topic)
                elif code != _TOPIC_ALREADY_EXISTS:
                    raise ConfigError(
                        "topic",
                        topic,
                        f"broker refused to create it ({code}: {message})",
                        "Check the broker's topic creation policy and AGENTLOG_REPLICATION_FACTOR.",
                    )
            logger.info("created topics %s", sorted(created))
        await _check_copartitioning(admin, settings, wanted)
    finally:
        await admin.close()
    return {name: name in created for name in wanted}


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client for the configured cluster (not started)."""
    if settings.kafka_bootstrap is None:
        raise ConfigError(
            "AGENTLOG_KAFKA_BOOTSTRAP",
            None,
            "no broker address is set",
            "Set AGENTLOG_KAFKA_BOOTSTRAP=host:port, pass --kafka, or start `agentlog dev`.",
        )
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.source}-admin",
        request_timeout_ms=int(_CONNECT_TIMEOUT_S * 1000),
        **settings.kafka_client_options(),
    )


async def _start_admin(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    try:
        await asyncio.wait_for(admin.start(), _CONNECT_TIMEOUT_S)
    except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as e:
        await admin.close()
        raise ConnectError(
            "AGENTLOG_KAFKA_BOOTSTRAP",
            settings.kafka_bootstrap,
            f"{type(e).__name__}: {e}",
            "Check that the broker runs and the address is host:port of a listener.",
        ) from e


def _topic_errors(response: object) -> Sequence[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", ())
    return [(e[0], e[1], e[2] if len(e) > 2 else None) for e in errors]


async def _check_copartitioning(
    admin: AIOKafkaAdminClient, settings: Settings, wanted: dict[str, TopicSpec]
) -> None:
    names = [n for n, s in wanted.items() if s.copartitioned]
    if len(names) < 2:
        return
    described = await admin.describe_topics(names)
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    if len(set(counts.values())) > 1:
        raise ConfigError(
            "AGENTLOG_PARTITIONS",
            settings.partitions,
            f"co-partitioned topics have different partition counts {counts}",
            "requests, journal and responses must have equal partition counts; "
            "recreate them or add partitions to match.",
        )
