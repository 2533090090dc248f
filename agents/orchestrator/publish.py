"""Publishing what the journal decided: tasks to agents, behind per-kind breakers.

The runner calls :meth:`TaskPublisher.publish` only after the journal
acknowledged the decisions that scheduled the tasks, and commits its input
offsets only after :meth:`publish` returned (every task acknowledged).

- ``tasks.<kind>`` topics are created on first use (an agent kind nobody
  declared just gets its topic; the task waits there for a pool).
- An agent kind the workflow spec accepts but that cannot name a Kafka topic
  of the streams layer (e.g. upper case) cannot reach any agent: the step is
  failed at once, through the log, with a ``TaskFailed`` on ``responses``
  (``error_kind`` ``invalid_agent_kind``, not retryable) that names the fix.
- While a kind's breaker is open its tasks are held here (see
  :mod:`.breaker`), and published when a probe is due or the breaker closes.
- Tasks of workflows that ended are cancelled: held ones are dropped, and a
  ``TaskCancelled`` for each goes to ``tasks.<kind>`` (behind its
  ``TaskRequested``: same topic, same key), whatever the kind's breaker says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka.structs import RecordMetadata

from agentlog.errors import ConfigError
from agentlog.schemas.events import TaskCancelled, TaskFailed, TaskRequested, derived_envelope
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import RESPONSES, TopicSpec, ensure_topics, tasks_topic

from .breaker import CircuitBreakers

logger = logging.getLogger(__name__)

#: ``error_kind`` of the failure recorded for a task whose kind names no valid topic.
INVALID_AGENT_KIND = "invalid_agent_kind"
SOURCE = "orchestrator"

#: Whether a held task (partition, task) still has its attempt running.
IsCurrent = Callable[[int, TaskRequested], bool]


@dataclass(slots=True)
class PublishStats:
    """Counters since start."""

    published: int = 0
    held: int = 0
    rejected_kinds: int = 0
    cancelled: int = 0
    topics_created: list[str] = field(default_factory=list)


class TaskPublisher:
    """Publishes ``TaskRequested`` events to ``tasks.<kind>`` and waits for their acks.

    Args:
        settings: topic prefix and partitioning of created topics.
        producer: a started producer.
        breakers: the per-kind circuit breakers.
        is_current: tells whether a held task is still worth publishing.
    """

    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        breakers: CircuitBreakers,
        is_current: IsCurrent,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._breakers = breakers
        self._is_current = is_current
        self._topics: dict[str, str | None] = {}
        self._held: dict[str, deque[tuple[int, TaskRequested]]] = {}
        self.stats = PublishStats()

    async def publish(self, tasks: Sequence[tuple[int, TaskRequested]], now: datetime) -> None:
        """Publish ``(partition, task)`` pairs (or hold them); return once all are acked."""
        futures = await self.publish_nowait(tasks, now)
        if futures:
            await asyncio.gather(*futures)

    async def publish_nowait(
        self, tasks: Sequence[tuple[int, TaskRequested]], now: datetime
    ) -> list[asyncio.Future[Any]]:
        """Send ``(partition, task)`` pairs (or hold them); return their acks' futures.

        The tasks of one topic go out together (one record batch per partition,
        :meth:`EventProducer.enqueue_batch`), in decision order.
        """
        await self._ensure_topics({task.agent_kind for _, task in tasks})
        futures: list[asyncio.Future[Any]] = []
        outgoing: dict[str, list[TaskRequested]] = {}
        for partition, task in tasks:
            topic = self._topics.get(task.agent_kind)
            if topic is None:
                futures.append(await self._reject_kind(partition, task))
            elif self._held.get(task.agent_kind) or not self._breakers.admit(task.agent_kind, now):
                self._held.setdefault(task.agent_kind, deque()).append((partition, task))
                self.stats.held += 1
            else:
                outgoing.setdefault(topic, []).append(task)
                self.stats.published += 1
        for topic, batch in outgoing.items():
            futures.append(await self._producer.enqueue_batch(topic, batch))
        return futures + await self.release_nowait(now)

    async def release(self, now: datetime) -> None:
        """Publish held tasks of kinds whose breaker admits them now; return once acked."""
        futures = await self.release_nowait(now)
        if futures:
            await asyncio.gather(*futures)

    async def release_nowait(self, now: datetime) -> list[asyncio.Future[Any]]:
        """Send held tasks of kinds whose breaker admits them now (probes included)."""
        futures: list[asyncio.Future[Any]] = []
        for kind, queue in self._held.items():
            topic = self._topics.get(kind)
            while queue and topic is not None:
                partition, task = queue[0]
                if not self._is_current(partition, task):
                    queue.popleft()
                    continue
                if not self._breakers.admit(kind, now):
                    break
                queue.popleft()
                futures.append(await self._producer.enqueue(topic, task))
                self.stats.published += 1
        self._held = {kind: queue for kind, queue in self._held.items() if queue}
        return futures

    @property
    def holding(self) -> bool:
        """True while some tasks wait for their breaker."""
        return bool(self._held)

    def held(self, kind: str) -> int:
        """How many tasks of ``kind`` are held."""
        return len(self._held.get(kind, ()))

    async def cancel(self, cancellations: Sequence[TaskCancelled]) -> None:
        """:meth:`cancel_nowait`, and return once every ``TaskCancelled`` is acknowledged."""
        futures = await self.cancel_nowait(cancellations)
        if futures:
            await asyncio.gather(*futures)

    async def cancel_nowait(
        self, cancellations: Sequence[TaskCancelled]
    ) -> list[asyncio.Future[Any]]:
        """Tasks whose workflow ended: drop held ones, send a ``TaskCancelled`` for each.

        Sent whether or not the task itself went out (a held task may have
        been published by an earlier owner; agents remember cancelled ids).
        Kinds that name no topic are skipped. Returns the acks' futures.
        """
        if not cancellations:
            return []
        ids = {c.task_id for c in cancellations}
        for kind, queue in self._held.items():
            self._held[kind] = deque(item for item in queue if item[1].task_id not in ids)
        self._held = {kind: queue for kind, queue in self._held.items() if queue}
        await self._ensure_topics({c.agent_kind for c in cancellations})
        futures: list[asyncio.Future[Any]] = []
        for cancelled in cancellations:
            topic = self._topics.get(cancelled.agent_kind)
            if topic is not None:
                futures.append(await self._producer.enqueue(topic, cancelled))
                self.stats.cancelled += 1
            logger.info(
                "cancelling task %s (workflow %s, step %s, agent kind %s)%s: %s",
                cancelled.task_id,
                cancelled.workflow_id,
                cancelled.step,
                cancelled.agent_kind,
                "" if topic is not None else " locally only (the kind names no topic)",
                cancelled.reason,
            )
        return futures

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget held tasks of partitions this member no longer owns."""
        for kind, queue in self._held.items():
            self._held[kind] = deque(item for item in queue if item[0] not in partitions)
        self._held = {kind: queue for kind, queue in self._held.items() if queue}

    async def _ensure_topics(self, kinds: set[str]) -> None:
        specs: list[TopicSpec] = []
        for kind in kinds - self._topics.keys():
            spec = _tasks_topic(kind)
            if spec is None:
                logger.error("agent kind %r cannot name a tasks topic", kind)
                self._topics[kind] = None
            else:
                specs.append(spec)
        if not specs:
            return
        created = await ensure_topics(self._settings, specs)
        for spec in specs:
            name = self._settings.topic(spec.name)
            self._topics[spec.name.removeprefix("tasks.")] = name
            if created.get(name):
                self.stats.topics_created.append(name)
                logger.info("created %s for agent kind %s", name, spec.name.removeprefix("tasks."))

    async def _reject_kind(
        self, partition: int, task: TaskRequested
    ) -> asyncio.Future[RecordMetadata]:
        """Fail the task through the log: a TaskFailed on ``responses``, back to this partition."""
        self.stats.rejected_kinds += 1
        failed = TaskFailed(
            # derived from the task: a re-publish after a crash is the same event
            envelope=derived_envelope(
                task.envelope, 0, "TaskFailed", task.workflow_id, source=SOURCE
            ),
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            step=task.step,
            attempt=task.attempt,
            error_kind=INVALID_AGENT_KIND,
            message=(
                f"agent kind {task.agent_kind!r} cannot name a tasks topic: use 1-64 "
                "lowercase letters, digits, '_' or '-', starting with a letter or digit "
                "(e.g. 'code-review'), and register agents of that kind"
            ),
            retryable=False,
            agent_id=SOURCE,
        )
        logger.error(
            "failing task %s of workflow %s: agent kind %r cannot name a tasks topic",
            task.task_id,
            task.workflow_id,
            task.agent_kind,
        )
        return await self._producer.send_raw(
            self._settings.topic(RESPONSES.name),
            self._producer.codec.encode(failed),
            key=task.workflow_id.encode("utf-8"),
            partition=partition,
        )


def _tasks_topic(kind: str) -> TopicSpec | None:
    try:
        return tasks_topic(kind)
    except ConfigError:
        return None
