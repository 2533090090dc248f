"""Committing the input offsets of written batches: one commit at a time, coalesced.

A batch's input offsets may be committed once its journal append, tasks and
lock commands are acknowledged (:mod:`.runner`). Committing each batch's
offsets in turn made every batch wait for the commit of the one before it: on
Apache Kafka 4 an OffsetCommit takes ~7 ms (its group coordinator lingers 5 ms
before writing the offsets), so a burst of batches queued behind their commits
and the runner's bound on pending batches stopped the loop meanwhile. Here one
commit is in flight at a time, and the next carries the newest offsets of
every batch acknowledged meanwhile. Batches are added in order, so offsets
never go backwards; fewer commits only mean that a crash re-delivers a few
more inputs, which the core ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiokafka.structs import TopicPartition

Offsets = dict[TopicPartition, int]


class OffsetCommitter:
    """Commits queued offsets with ``commit``, one call at a time.

    Args:
        commit: commits offsets (the next offset to read, per partition).
    """

    def __init__(self, commit: Callable[[Offsets], Awaitable[None]]) -> None:
        self._commit = commit
        self._queued: Offsets = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, offsets: Offsets) -> None:
        """Queue the offsets of the next acknowledged batch (call in batch order).

        Raises:
            Exception: an earlier commit failed (the failure ``commit`` raised).
        """
        self.raise_failure()
        if not offsets:
            return
        self._queued.update(offsets)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="offset commits")

    async def drain(self) -> None:
        """Until every queued offset is committed.

        Raises:
            Exception: a commit failed.
        """
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise the failure of the last commit, if it failed."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            failure = task.exception()
            if failure is not None:
                raise failure

    async def close(self) -> None:
        """Stop committing (after a failure of the runner): queued offsets are dropped."""
        task, self._task = self._task, None
        self._queued = {}
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while self._queued:
            offsets, self._queued = self._queued, {}
            await self._commit(offsets)
