"""Helpers for the lock integration tests: fresh topics, a log tail, a lock-manager process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from aiokafka.structs import TopicPartition

from agentlog.agents.locks.commands import LockDecision, is_decision
from agentlog.schemas.events import Event, LockGranted
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import DEADLETTER, LOCKS, ensure_topics

ROOT = Path(__file__).resolve().parents[3]


def fresh_settings(kafka_bootstrap: str, *, partitions: int = 3) -> Settings:
    """Settings with a topic prefix no other test uses."""
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"locks{uuid.uuid4().hex[:10]}",
        partitions=partitions,
        source="test",
    )


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings, [LOCKS, DEADLETTER])


class LocksTail:
    """Reads every partition of the locks topic from the start: all records, in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: every record as (partition, offset, event)
        self.records: list[tuple[int, int, Event]] = []
        self._changed = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LocksTail:
        producer = await self._stack.enter_async_context(EventProducer(self.settings))
        topic = self.settings.topic(LOCKS.name)
        tps = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
        consumer = EventConsumer(self.settings, group_id=None, dead_letters=None)
        await self._stack.enter_async_context(consumer)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="locks-tail")
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
            self.records.extend((d.partition, d.offset, d.event) for d in batch)
            if batch:
                self._changed.set()

    @property
    def events(self) -> list[Event]:
        return [e for _, _, e in self.records]

    def decisions(self, resource: str | None = None) -> list[LockDecision]:
        """The lock manager's decisions (of one resource), in log order."""
        return [
            e
            for e in self.events
            if is_decision(e) and (resource is None or e.resource == resource)
        ]

    def grants(self, resource: str | None = None) -> list[LockGranted]:
        return [e for e in self.decisions(resource) if isinstance(e, LockGranted)]

    def of(self, request_id: str) -> list[LockDecision]:
        return [e for e in self.decisions() if e.request_id == request_id]

    async def until(self, predicate: Callable[[LocksTail], bool], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


def start_manager(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``python -m agentlog.agents.locks`` for the test's topics, logging to ``log``."""
    assert settings.kafka_bootstrap is not None
    env = {
        **os.environ,
        "AGENTLOG_PARTITIONS": str(settings.partitions),
        "AGENTLOG_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentlog.agents.locks",
                "--kafka",
                settings.kafka_bootstrap,
                "--topic-prefix",
                settings.topic_prefix,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


async def poll_until(predicate: Callable[[], bool], seconds: float) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - polls a process or plain attributes
            await asyncio.sleep(0.01)


async def reap(process: subprocess.Popen[bytes], seconds: float = 30) -> int:
    """Wait for a process to end (it was signalled); kill it if it does not."""
    try:
        await poll_until(lambda: process.poll() is not None, seconds)
    except TimeoutError:
        process.kill()
        await poll_until(lambda: process.poll() is not None, 10)
    return process.returncode
