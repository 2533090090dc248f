"""The durable timers of one partition: a heap of each workflow's next due timer.

Timers are not stored: the core derives them from state (``next_timer``), and
the state from the journal. The heap keeps only the earliest pending timer per
workflow; entries made stale by a later :meth:`TimerHeap.set` stay in the heap
and are skipped when they reach the top (lazy deletion), so every operation is
O(log n).
"""

from __future__ import annotations

import heapq
from datetime import datetime

from agentlog.workflow import TimerFired


class TimerHeap:
    """Earliest pending timer per workflow, ordered by due time."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str, str]] = []
        self._current: dict[str, TimerFired] = {}

    def set(self, workflow_id: str, timer: TimerFired | None) -> None:
        """Make ``timer`` the next timer of ``workflow_id`` (None: it has none)."""
        if timer is None:
            self._current.pop(workflow_id, None)
            return
        if self._current.get(workflow_id) == timer:
            return
        self._current[workflow_id] = timer
        heapq.heappush(self._heap, (timer.due_at, workflow_id, timer.timer_id))

    def discard(self, workflow_id: str) -> None:
        """Forget the timer of ``workflow_id``."""
        self._current.pop(workflow_id, None)

    def next_due(self) -> datetime | None:
        """When the earliest timer is due, or None when there is none."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[TimerFired]:
        """Remove and return every timer due at ``now`` or earlier, earliest first."""
        due: list[TimerFired] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, workflow_id, _ = heapq.heappop(self._heap)
            due.append(self._current.pop(workflow_id))

    def __len__(self) -> int:
        """Workflows with a pending timer."""
        return len(self._current)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            due_at, workflow_id, timer_id = heap[0]
            current = self._current.get(workflow_id)
            if current is not None and current.due_at == due_at and current.timer_id == timer_id:
                return
            heapq.heappop(heap)
