"""The client's view of the locks topic: decisions routed to the requests waiting for them.

A :class:`DecisionTail` reads every partition of the locks topic from the end
offsets taken when it starts (no consumer group: no join delay), so every
decision about a request sent afterwards reaches it: a decision is always
appended after the request it answers. Decisions are routed by request id to
the :class:`Watch` registered for it (register before sending the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.structs import TopicPartition

from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer

from .commands import LockDecision, is_decision

logger = logging.getLogger(__name__)


class Watch:
    """The decisions about one request, in log order; the tail's failure ends it."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._queue: asyncio.Queue[LockDecision | BaseException] = asyncio.Queue()

    def put(self, item: LockDecision | BaseException) -> None:
        self._queue.put_nowait(item)

    async def get(self) -> LockDecision:
        """The next decision about the request.

        Raises:
            BaseException: whatever stopped the tail (the broker went away).
        """
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later get() fails the same way
            raise item
        return item


class DecisionTail:
    """Reads every partition of the locks topic from now on and routes decisions by request id.

    Args:
        settings: the broker.
        topic: the full locks topic name.
        partitions: how many partitions the topic has.
        client_id: Kafka client id.
    """

    def __init__(self, settings: Settings, topic: str, partitions: int, client_id: str) -> None:
        self._settings = settings
        self._topic = topic
        self._partitions = partitions
        self._client_id = client_id
        self._watches: dict[str, Watch] = {}
        self._consumer: EventConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    async def start(self) -> None:
        """Connect and position at the end of every partition; idempotent."""
        if self._consumer is not None:
            return
        consumer = EventConsumer(
            self._settings, group_id=None, dead_letters=None, client_id=self._client_id
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                await consumer.seek(tp, end)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"lock tail {self._topic}")

    async def stop(self) -> None:
        """Stop reading; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def watch(self, request_id: str) -> Watch:
        """Start routing the decisions about ``request_id`` (before sending the request)."""
        if self.failure is not None:
            raise self.failure
        found = self._watches.get(request_id)
        if found is None:
            found = self._watches[request_id] = Watch(request_id)
        return found

    def unwatch(self, request_id: str) -> None:
        """Stop routing decisions about ``request_id``."""
        self._watches.pop(request_id, None)

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while True:
                for delivered in await consumer.poll(timeout_ms=250):
                    event = delivered.event
                    if not is_decision(event):
                        continue
                    watch = self._watches.get(event.request_id)
                    if watch is not None:
                        watch.put(event)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.failure = e
            logger.exception("reading lock decisions from %s failed", self._topic)
            for watch in self._watches.values():
                watch.put(e)
