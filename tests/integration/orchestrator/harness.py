"""Helpers for the orchestrator's integration tests: agents played by the test, a journal tail.

``Responder`` reads ``tasks.<kind>`` (manually assigned, no group: no join
delay) and answers on ``responses`` with whatever its behaviour returns.
``JournalTail`` reads every journal partition and folds each workflow's state,
so a test can wait until workflows reach a terminal state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka.structs import TopicPartition

from agentlog.schemas.events import (
    JsonValue,
    StepScheduled,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    new_envelope,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import CATALOGUE, JOURNAL, RESPONSES, ensure_topics, tasks_topic
from agentlog.workflow import JournalEvent, WorkflowState, evolve
from tests.unit.workflow.test_demos import fake_agent


def fresh_settings(kafka_bootstrap: str, *, partitions: int = 3) -> Settings:
    """Settings with a topic prefix no other test uses."""
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"orch{uuid.uuid4().hex[:10]}",
        partitions=partitions,
        source="test",
    )


async def create_topics(settings: Settings, kinds: Iterable[str] = ()) -> None:
    """The catalogue and ``tasks.<kind>`` for each kind."""
    await ensure_topics(settings, [*CATALOGUE, *(tasks_topic(k) for k in kinds)])


@dataclass(frozen=True)
class Done:
    """Answer a task with TaskCompleted."""

    output: JsonValue


@dataclass(frozen=True)
class Fail:
    """Answer a task with TaskFailed."""

    error_kind: str = "agent_error"
    retryable: bool = True
    message: str = "failed on purpose"


Reply = Done | Fail | None
Behaviour = Callable[[TaskRequested], Reply | Awaitable[Reply]]


def demo_behaviour(task: TaskRequested) -> Reply:
    """The deterministic fake demo agents of the core's unit tests."""
    return Done(fake_agent(task))


class Responder:
    """Plays the agents of ``kinds``: every task gets ``behaviour(task)`` as its answer.

    A ``None`` reply leaves the task unanswered. A task id seen before is not
    answered again (agents dedupe re-published tasks); ``duplicates`` counts them.
    """

    def __init__(
        self,
        settings: Settings,
        kinds: Iterable[str],
        behaviour: Behaviour = demo_behaviour,
        *,
        delay: float = 0.0,
    ) -> None:
        self.settings = settings
        self.kinds = sorted(set(kinds))
        self.behaviour = behaviour
        self.delay = delay
        self.tasks: list[TaskRequested] = []
        #: the TaskCancelled events seen on the tasks topics, in order
        self.cancellations: list[TaskCancelled] = []
        #: task id -> when this responder first received it
        self.received: dict[str, datetime] = {}
        self.duplicates = 0
        self._answered: set[str] = set()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Responder:
        await ensure_topics(self.settings, [tasks_topic(k) for k in self.kinds])
        self._producer = await self._stack.enter_async_context(EventProducer(self.settings))
        consumer = EventConsumer(self.settings, group_id=None, dead_letters=None)
        await self._stack.enter_async_context(consumer)
        tps = []
        for kind in self.kinds:
            topic = self.settings.topic(f"tasks.{kind}")
            tps += [TopicPartition(topic, p) for p in await self._producer.partitions_for(topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="responder")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in list(self._pending):
            pending.cancel()
        if self._pending:
            await asyncio.wait(self._pending)
        await self._stack.aclose()

    async def _run(self) -> None:
        while True:
            for delivered in await self._consumer.poll(timeout_ms=100):
                task = delivered.event
                if isinstance(task, TaskCancelled):
                    self.cancellations.append(task)
                    continue
                assert isinstance(task, TaskRequested)
                self.tasks.append(task)
                self.received.setdefault(task.task_id, datetime.now(UTC))
                if task.task_id in self._answered:
                    self.duplicates += 1
                    continue
                self._answered.add(task.task_id)
                answer = asyncio.create_task(self._answer(task))
                self._pending.add(answer)
                answer.add_done_callback(self._pending.discard)

    async def _answer(self, task: TaskRequested) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.behaviour(task)
        if inspect.isawaitable(reply):
            reply = await reply
        if reply is None:
            return
        await self._producer.send(self.settings.topic(RESPONSES.name), response(task, reply))


def response(task: TaskRequested, reply: Done | Fail) -> TaskCompleted | TaskFailed:
    """The TaskCompleted / TaskFailed an agent sends for ``task``."""
    envelope = new_envelope(
        "TaskCompleted" if isinstance(reply, Done) else "TaskFailed",
        task.workflow_id,
        source="test-agent",
        causation_id=task.envelope.event_id,
        correlation_id=task.envelope.correlation_id,
    )
    common: dict[str, Any] = {
        "envelope": envelope,
        "task_id": task.task_id,
        "workflow_id": task.workflow_id,
        "step": task.step,
        "attempt": task.attempt,
        "agent_id": f"test-{task.agent_kind}",
    }
    if isinstance(reply, Done):
        return TaskCompleted(output=reply.output, **common)
    return TaskFailed(
        error_kind=reply.error_kind, message=reply.message, retryable=reply.retryable, **common
    )


async def poll_until(predicate: Callable[[], bool], seconds: float) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms (for state with no event to await)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - polls another component's plain attributes
            await asyncio.sleep(0.01)


class JournalTail:
    """Reads every journal partition from the start and folds each workflow's state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events: list[JournalEvent] = []
        self.states: dict[str, WorkflowState] = {}
        #: workflow id -> the journal partitions its events are on
        self.partitions: dict[str, set[int]] = {}
        self._changed = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JournalTail:
        producer = await self._stack.enter_async_context(EventProducer(self.settings))
        topic = self.settings.topic(JOURNAL.name)
        tps = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
        consumer = EventConsumer(self.settings, group_id=None, dead_letters=None)
        await self._stack.enter_async_context(consumer)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="journal-tail")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.aclose()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.poll(timeout_ms=100)
            for delivered in batch:
                event: Any = delivered.event
                self.events.append(event)
                self.partitions.setdefault(event.workflow_id, set()).add(delivered.partition)
                state = evolve(self.states.get(event.workflow_id), event)
                if state is not None:
                    self.states[event.workflow_id] = state
            if batch:
                self._changed.set()

    async def until(self, predicate: Callable[[JournalTail], bool], seconds: float) -> None:
        """Wait until ``predicate(self)`` holds (checked after every batch)."""
        async with asyncio.timeout(seconds):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def terminal(
        self, workflow_ids: Iterable[str], seconds: float
    ) -> dict[str, WorkflowState]:
        """Wait until every workflow is terminal; return their states."""
        ids = list(workflow_ids)

        def done(tail: JournalTail) -> bool:
            return all((s := tail.states.get(i)) is not None and s.status.terminal for i in ids)

        try:
            await self.until(done, seconds)
        except TimeoutError:
            open_ids = [i for i in ids if i not in self.states or self.states[i].running]
            raise AssertionError(
                f"{len(open_ids)} of {len(ids)} workflows not terminal after {seconds} s, "
                f"e.g. {[(i, self.states.get(i)) for i in open_ids[:2]]}"
            ) from None
        return {i: self.states[i] for i in ids}

    def of(self, workflow_id: str) -> list[JournalEvent]:
        """The journal events of one workflow, in order."""
        return [e for e in self.events if e.workflow_id == workflow_id]

    def scheduled_task_ids(self) -> list[str]:
        """Every StepScheduled task id in the journal, duplicates included."""
        return [e.task_id for e in self.events if isinstance(e, StepScheduled)]
