"""Answers on their way to ``responses``: produced by one sender, settled once acknowledged.

A task counts as done only once its answer is acknowledged (acks=all), and
only then may its offset be committed. Awaiting each acknowledgement before
taking the next task would put a broker round trip behind every task; instead
a finished task leaves its answer here and its slot is free at once. One
sender produces the queued answers back to back (the producer batches them
into few requests; while its batch for a partition is full, only the sender
waits, not every task) and leaves each acknowledgement future here. Answers
produced together resolve together; each settles its own task through a
callback, so no task waits for another's acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Produces one answer: returns what was answered and the future of its acknowledgement.
Produce = Callable[[T], Awaitable[tuple[T, "asyncio.Future[Any]"]]]


class Answers(Generic[T]):
    """Answers (items) to produce, and produced ones not acknowledged yet.

    Run :meth:`run` as a task (the sender). Args:
        produce: produces one item's answer; an error it raises stops the sender.
        acked: called with the item once its answer is acknowledged.
        failed: called with the item and the error when producing it failed for
            good (after the client's retries), or was cancelled.
    """

    def __init__(
        self,
        produce: Produce[T],
        acked: Callable[[T], None],
        failed: Callable[[T, BaseException], None],
    ) -> None:
        self._produce = produce
        self._acked = acked
        self._failed = failed
        self._queue: deque[T] = deque()
        self._producing: list[T] = []  # taken from the queue, its future not back yet
        self._pending: dict[asyncio.Future[Any], T] = {}
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Answers queued, being produced or waiting for their acknowledgement."""
        return len(self._queue) + len(self._producing) + len(self._pending)

    def items(self) -> list[T]:
        """Everything not acknowledged yet."""
        return [*self._queue, *self._producing, *self._pending.values()]

    def put(self, item: T) -> None:
        """Queue ``item``'s answer for the sender."""
        self._queue.append(item)
        self._idle.clear()
        self._ready.set()

    async def run(self) -> None:
        """The sender: produce queued answers in order, forever (cancel to stop)."""
        queue, producing = self._queue, self._producing
        while True:
            await self._ready.wait()
            self._ready.clear()
            while queue:
                producing.append(queue.popleft())
                item, future = await self._produce(producing[0])
                producing.clear()
                self._pending[future] = item
                future.add_done_callback(self._resolved)
            self._check_idle()

    def _resolved(self, future: asyncio.Future[Any]) -> None:
        item = self._pending.pop(future)
        if future.cancelled():
            self._failed(item, asyncio.CancelledError("the answer's send was cancelled"))
        elif (error := future.exception()) is not None:
            self._failed(item, error)
        else:
            self._acked(item)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._queue and not self._producing and not self._pending:
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
