"""The bounded priority buffer of fetched tasks not yet started (the priority lanes)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class PriorityBuffer(Generic[T]):
    """Items waiting to start: the highest priority first, first-in first-out within one.

    The bound is advisory: :attr:`full` tells the fetcher to stop fetching;
    :meth:`push` never refuses (what was fetched must be kept or redelivered).
    """

    def __init__(self, capacity: int) -> None:
        """Args:
        capacity: how many waiting items make the buffer :attr:`full` (at least 1).
        """
        if capacity < 1:
            raise ValueError(f"buffer capacity={capacity} must be at least 1")
        self.capacity = capacity
        self._heap: list[tuple[int, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[T]:
        """The waiting items, in no particular order."""
        return (item for _, _, item in self._heap)

    @property
    def full(self) -> bool:
        """True when at least ``capacity`` items wait."""
        return len(self._heap) >= self.capacity

    def push(self, item: T, priority: int) -> None:
        """Add ``item``; a higher ``priority`` starts earlier."""
        heapq.heappush(self._heap, (-priority, next(self._seq), item))

    def pop(self) -> T:
        """Remove and return the item to start next. Raises IndexError when empty."""
        return heapq.heappop(self._heap)[2]

    def remove_if(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove every item ``predicate`` selects; return them in start order."""
        removed = sorted(
            (entry for entry in self._heap if predicate(entry[2])), key=lambda e: (e[0], e[1])
        )
        if removed:
            ids = {id(entry) for entry in removed}
            self._heap = [entry for entry in self._heap if id(entry) not in ids]
            heapq.heapify(self._heap)
        return [item for _, _, item in removed]

    def clear(self) -> list[T]:
        """Remove and return everything, in start order."""
        return self.remove_if(lambda _: True)
