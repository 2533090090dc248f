"""Helpers for agent-runtime tests on a real broker: tasks, publishing, reading topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import Agent, topics_for
from agentlog.schemas.events import PRIORITY_DEFAULT, Event, JsonValue, TaskRequested, new_envelope
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import ensure_topics, tasks_topic


async def until(condition: Callable[[], bool], limit_s: float = 30.0) -> None:
    """Wait until ``condition()`` holds, checking every 20 ms."""
    async with asyncio.timeout(limit_s):
        while not condition():  # noqa: ASYNC110 - polls state the code under test owns
            await asyncio.sleep(0.02)


async def make_topics(settings: Settings, *agents: Agent) -> None:
    """Create the topics the agents' pools use."""
    await ensure_topics(settings, topics_for(agents))


def task_event(
    kind: str,
    input: JsonValue = None,
    *,
    workflow_id: str | None = None,
    step: str = "step",
    attempt: int = 1,
    priority: int = PRIORITY_DEFAULT,
    deadline: datetime | None = None,
    task_id: str | None = None,
) -> TaskRequested:
    """A TaskRequested as the orchestrator would publish it."""
    wf = workflow_id or f"wf-{uuid.uuid4().hex[:8]}"
    return TaskRequested(
        envelope=new_envelope("TaskRequested", wf, source="test"),
        task_id=task_id or f"{wf}/{step}/1/0/{attempt}",
        workflow_id=wf,
        step=step,
        attempt=attempt,
        agent_kind=kind,
        input=input,
        deadline=deadline,
        idempotency_key=f"{wf}/{step}/1/0",
        priority=priority,
        fencing_tokens={},
    )


async def publish(settings: Settings, producer: EventProducer, *tasks: TaskRequested) -> None:
    """Publish tasks on their ``tasks.<kind>`` topics and wait for the acknowledgements."""
    for task in tasks:
        await producer.send(settings.topic(tasks_topic(task.agent_kind).name), task)


class Reader:
    """Reads a topic from the beginning without a group (as a test observer)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._consumer = EventConsumer(settings, group_id=None, dead_letters=None)
        self.seen: list[Event] = []

    async def __aenter__(self) -> Reader:
        await self._consumer.start()
        parts = range(self._settings.partitions)
        self._consumer.assign([TopicPartition(self._topic, p) for p in parts])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def until(
        self, done: Callable[[list[Event]], bool], limit_s: float = 30.0
    ) -> list[Event]:
        """Read until ``done(seen)`` holds; return everything seen."""
        async with asyncio.timeout(limit_s):
            while not done(self.seen):
                self.seen.extend(d.event for d in await self._consumer.poll(timeout_ms=100))
        return self.seen

    async def for_tasks(self, task_ids: set[str], limit_s: float = 30.0) -> dict[str, Event]:
        """The first TaskCompleted/TaskFailed of each task id."""

        def answered(seen: list[Event]) -> bool:
            return task_ids <= {getattr(e, "task_id", None) for e in seen if _is_answer(e)}

        await self.until(answered, limit_s)
        answers: dict[str, Event] = {}
        for event in self.seen:
            task_id = getattr(event, "task_id", None)
            if _is_answer(event) and task_id in task_ids:
                answers.setdefault(task_id, event)
        return answers


def _is_answer(event: Event) -> bool:
    return event.envelope.type in ("TaskCompleted", "TaskFailed")
