"""Which offsets an agent may commit: contiguous completion per partition.

Tasks finish out of order (concurrency, priorities), but a Kafka offset commit
says "everything before this is done". So a partition's commit position is its
lowest offset still pending (fetched, not finished), or, with nothing pending,
the position fetching has reached. A crash then redelivers exactly the
unfinished tasks (and nothing finished before the lowest unfinished one is lost).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass(slots=True)
class _Partition:
    pending: set[int] = field(default_factory=set)
    position: int | None = None  # next offset after everything fetched so far
    committed: int | None = None


class OffsetTracker(Generic[P]):
    """Pending offsets per partition and the commit positions they allow. Pure, no I/O."""

    def __init__(self) -> None:
        self._parts: dict[P, _Partition] = {}

    def assign(self, partitions: Iterable[P]) -> None:
        """Start tracking ``partitions`` afresh (after a rebalance gave them to us)."""
        for tp in partitions:
            self._parts[tp] = _Partition()

    def revoke(self, partitions: Iterable[P]) -> None:
        """Forget ``partitions``: later completions there are ignored."""
        for tp in partitions:
            self._parts.pop(tp, None)

    def fetched(self, tp: P, offset: int) -> None:
        """The record at ``offset`` was fetched and is pending until :meth:`done`."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        part.pending.add(offset)
        if part.position is None or offset >= part.position:
            part.position = offset + 1

    def advance(self, tp: P, position: int) -> None:
        """Fetching reached ``position``: records before it that are not pending are settled.

        For records the consumer skipped (dead-lettered poison); ignored for
        partitions not tracked.
        """
        part = self._parts.get(tp)
        if part is not None and (part.position is None or position > part.position):
            part.position = position

    def done(self, tp: P, offset: int) -> bool:
        """The record at ``offset`` is finished; False when it was not pending here."""
        part = self._parts.get(tp)
        if part is None or offset not in part.pending:
            return False
        part.pending.discard(offset)
        return True

    def commit_position(self, tp: P) -> int | None:
        """The offset to commit for ``tp`` (lowest pending, else the fetch position)."""
        part = self._parts.get(tp)
        if part is None:
            return None
        return min(part.pending) if part.pending else part.position

    def pending(self, tp: P) -> frozenset[int]:
        """Offsets of ``tp`` fetched and not finished."""
        part = self._parts.get(tp)
        return frozenset(part.pending) if part is not None else frozenset()

    def to_commit(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """Commit positions that moved since :meth:`committed` last recorded them."""
        chosen = self._parts if partitions is None else dict.fromkeys(partitions)
        result: dict[P, int] = {}
        for tp in chosen:
            part = self._parts.get(tp)
            position = self.commit_position(tp)
            if part is not None and position is not None and position != part.committed:
                result[tp] = position
        return result

    def committed(self, offsets: Mapping[P, int]) -> None:
        """Record that ``offsets`` were committed."""
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset
