"""Lease expiries and wait deadlines: derived from state, kept in a heap by the runner.

Timers are stored nowhere: a resource's next timer follows from its state (the
holder's ``expires_at``, each waiter's ``deadline``), and the state from the
log. The runner keeps the earliest timer per resource in a :class:`TimerHeap`
and feeds it to ``decide`` once due; a timer that is no longer pending decides
nothing, so firing one twice is harmless. Because ``decide`` applies every
due timer before any input (the time rule), a late timer never changes an
outcome, only when it is recorded.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from .commands import LockTimer
from .state import LockState

EXPIRY = "expiry"
WAIT = "wait"


def pending_timers(state: LockState | None) -> tuple[LockTimer, ...]:
    """Every pending timer of a resource, earliest first."""
    if state is None:
        return ()
    found = [
        LockTimer(resource=state.resource, kind=WAIT, request_id=w.request_id, due_at=w.deadline)
        for w in state.queue
    ]
    holder = state.holder
    if holder is not None:
        found.append(
            LockTimer(
                resource=state.resource,
                kind=EXPIRY,
                request_id=holder.request_id,
                due_at=holder.expires_at,
            )
        )
    found.sort(key=lambda t: (t.due_at, t.kind != WAIT, t.request_id))
    return tuple(found)


def next_timer(state: LockState | None) -> LockTimer | None:
    """The earliest pending timer of a resource, or None."""
    pending = pending_timers(state)
    return pending[0] if pending else None


class TimerHeap:
    """The earliest pending timer per resource, ordered by due time.

    Entries made stale by a later :meth:`set` stay in the heap and are
    skipped when they reach the top (lazy deletion): every operation is O(log n).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str, str]] = []
        self._current: dict[str, LockTimer] = {}

    def set(self, resource: str, timer: LockTimer | None) -> None:
        """Make ``timer`` the next timer of ``resource`` (None: it has none)."""
        if timer is None:
            self._current.pop(resource, None)
            return
        if self._current.get(resource) == timer:
            return
        self._current[resource] = timer
        heapq.heappush(self._heap, (timer.due_at, resource, timer.event_id))

    def next_due(self) -> datetime | None:
        """When the earliest timer is due, or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[LockTimer]:
        """Remove and return every timer due at ``now`` or earlier, earliest first."""
        due: list[LockTimer] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, resource, _ = heapq.heappop(self._heap)
            due.append(self._current.pop(resource))

    def __len__(self) -> int:
        """Resources with a pending timer."""
        return len(self._current)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            due_at, resource, timer_id = heap[0]
            current = self._current.get(resource)
            if current is not None and current.due_at == due_at and current.event_id == timer_id:
                return
            heapq.heappop(heap)
