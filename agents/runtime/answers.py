"""Answers on their way to ``responses``: produced by one sender, settled once acknowledged.

A task counts as done only once its answer is acknowledged (acks=all), and
only then may its offset be committed. Awaiting each acknowledgement before
taking the next task would put a broker round trip behind every task; instead
a finished task leaves its answer here and its slot is free at once. One
sender produces what has queued up since its last turn together, as one batch
(one record batch per partition, one acknowledgement future for the lot),
and leaves the future here; while the producer cannot take more, only the
sender waits, and the answers queue behind it into the next batch. When a
batch is acknowledged, each of its items is settled through a callback, so no
task waits for another batch's acknowledgement.

An item put with :meth:`Answers.put_alone` is produced in a batch of its own:
for answers that must be told apart by their acknowledgement (finding the
one of a batch that the broker refuses as too large).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Produces a batch of answers: returns the future of their (common) acknowledgement.
Produce = Callable[[list[T]], Awaitable["asyncio.Future[Any]"]]

#: Most answers produced in one batch (the producer splits it into record batches).
DEFAULT_MAX_BATCH = 500


class Answers(Generic[T]):
    """Answers (items) to produce, and produced ones not acknowledged yet.

    Run :meth:`run` as a task (the sender). Args:
        produce: produces one batch of items' answers; an error it raises stops
            the sender (the batch stays unacknowledged).
        acked: called with each item of a batch once the batch is acknowledged.
        failed: called with the items of a batch and the error when producing
            it failed for good (after the client's retries), or was cancelled.
        max_batch: most items produced in one batch.
    """

    def __init__(
        self,
        produce: Produce[T],
        acked: Callable[[T], None],
        failed: Callable[[list[T], BaseException], None],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch} must be at least 1")
        self._produce = produce
        self._acked = acked
        self._failed = failed
        self._max_batch = max_batch
        self._queue: deque[T] = deque()
        self._alone: deque[T] = deque()  # each produced in a batch of its own, first
        self._producing: list[T] = []  # taken from the queue, its future not back yet
        self._pending: dict[asyncio.Future[Any], list[T]] = {}
        self._size = 0  # items queued, being produced or pending
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Answers queued, being produced or waiting for their acknowledgement."""
        return self._size

    def items(self) -> list[T]:
        """Everything not acknowledged yet."""
        pending = [item for batch in self._pending.values() for item in batch]
        return [*self._alone, *self._queue, *self._producing, *pending]

    def put(self, item: T) -> None:
        """Queue ``item``'s answer for the sender's next batch."""
        self._queue.append(item)
        self._size += 1
        self._idle.clear()
        self._ready.set()

    def put_alone(self, item: T) -> None:
        """Queue ``item``'s answer to be produced in a batch of its own."""
        self._alone.append(item)
        self._size += 1
        self._idle.clear()
        self._ready.set()

    async def run(self) -> None:
        """The sender: produce queued answers in order, in batches, forever (cancel to stop)."""
        queue, alone, limit = self._queue, self._alone, self._max_batch
        while True:
            await self._ready.wait()
            self._ready.clear()
            while alone or queue:
                if alone:
                    batch = [alone.popleft()]
                elif len(queue) <= limit:
                    batch = list(queue)
                    queue.clear()
                else:
                    batch = [queue.popleft() for _ in range(limit)]
                self._producing = batch
                future = await self._produce(batch)
                self._producing = []
                self._pending[future] = batch
                future.add_done_callback(self._resolved)
            self._check_idle()

    def _resolved(self, future: asyncio.Future[Any]) -> None:
        batch = self._pending.pop(future)
        self._size -= len(batch)
        if future.cancelled():
            self._failed(batch, asyncio.CancelledError("the answers' send was cancelled"))
        elif (error := future.exception()) is not None:
            self._failed(batch, error)
        else:
            acked = self._acked
            for item in batch:
                acked(item)
        self._check_idle()

    def _check_idle(self) -> None:
        if not (self._queue or self._alone or self._producing or self._pending):
            self._idle.set()

    async def drain(self, limit_s: float) -> list[T]:
        """Wait up to ``limit_s`` seconds until every answer is acknowledged (or failed).

        Returns:
            the items still unacknowledged when the time ran out.
        """
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), max(limit_s, 0.0))
        return self.items()
