"""Helpers for agent-runtime tests on a real broker: tasks, publishing, reading topics."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import Agent, group_id_for, topics_for
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


ROOT = Path(__file__).resolve().parents[3]


class AgentProcess:
    """``python -m agentlog.agents.runtime run TARGET …`` as a child process, output in a file."""

    def __init__(
        self,
        settings: Settings,
        target: str,
        log: Path,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        self.kind = target.rpartition(":")[2]
        self._args = [
            "-m",
            "agentlog.agents.runtime",
            "run",
            target,
            "--kafka",
            str(settings.kafka_bootstrap),
            "--topic-prefix",
            settings.topic_prefix,
            *args,
        ]
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self._args, cwd=ROOT, env=self._env, stdout=out, stderr=out
            )

    async def agent_id(self, kind: str | None = None) -> str:
        """The agent id the process prints once its pool of ``kind`` started."""
        pattern = rf"agent {re.escape(kind or self.kind)}: (\S+),"
        async with asyncio.timeout(30):
            while not (found := re.search(pattern, self.output())):
                assert self.proc is not None
                assert self.proc.returncode is None, self.output()
                await asyncio.sleep(0.05)
        return found.group(1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def signal(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(30):
            return await self.proc.wait()

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def committed(settings: Settings, kind: str, tp: TopicPartition) -> int | None:
    """The offset the group of ``kind``'s pools committed on ``tp`` (None: nothing yet).

    Asked without joining the group (an OffsetFetch), so the pools are not disturbed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id_for(settings, kind),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
    finally:
        await consumer.stop()
    return offset


async def until_committed(
    settings: Settings, kind: str, tp: TopicPartition, offset: int, limit_s: float = 30.0
) -> None:
    """Wait until the group of ``kind`` committed ``offset`` on ``tp``."""
    async with asyncio.timeout(limit_s):
        while await committed(settings, kind, tp) != offset:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)


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

    async def to_end(self) -> list[Event]:
        """Read everything the topic holds now; return everything seen."""
        consumer = self._consumer
        parts = [TopicPartition(self._topic, p) for p in range(self._settings.partitions)]
        ends = await consumer.end_offsets(parts)
        async with asyncio.timeout(30):
            while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items() if end):
                self.seen.extend(d.event for d in await consumer.poll(timeout_ms=100))
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
