"""Committing an agent pool's settled offsets: on a timer, off the fetch and answer paths.

Waiting for an offset commit after every task would put a broker round trip
behind each one. The committer instead commits, every ``interval`` seconds,
what the :class:`~agentlog.agents.runtime.offsets.OffsetTracker` allows: per
partition, up to the lowest task whose answer is not acknowledged yet. A crash
between two commits only redelivers tasks that were answered since the last
one (at least once; idempotency keys make that harmless), never loses one.

Commits are serialised (one at a time, each computed under the lock), so a
later commit never lands before an earlier, lower one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from agentlog.agents.runtime.consumer import TaskConsumer
from agentlog.agents.runtime.offsets import OffsetTracker

logger = logging.getLogger(__name__)


class Committer:
    """Commits the tracker's commit positions to the consumer group.

    Args:
        consumer: the pool's consumer (a group member).
        tracker: which offsets are settled.
        interval: seconds between timer commits.
        name: who commits, for log lines (the agent id).
    """

    def __init__(
        self,
        consumer: TaskConsumer,
        tracker: OffsetTracker[TopicPartition],
        interval: float,
        name: str,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"commit interval={interval} must be more than 0 seconds")
        self._consumer = consumer
        self._tracker = tracker
        self._interval = interval
        self._name = name
        self._lock = asyncio.Lock()
        self.commits = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Commit every ``interval`` seconds until ``stopping`` is set (the final commit is the
        caller's, after the last answers are acknowledged)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)
                return
            await self.commit()

    async def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit what moved on ``partitions`` (default: every assigned one); never raises
        KafkaError (a failed commit is retried by the next one)."""
        async with self._lock:
            chosen = self._consumer.assignment() if partitions is None else partitions
            offsets = self._tracker.to_commit(chosen)
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as e:
                # a rebalance in progress, a moved coordinator: committed next time (or the
                # tasks are delivered again, which idempotency keys make harmless)
                logger.warning("agent %s could not commit %s: %s", self._name, offsets, e)
                return
            self._tracker.committed(offsets)
            self.commits += 1
