"""Additive rollups per agent kind (or lock resource) and minute, and percentiles from them.

Every counter is an integer (latencies in microseconds), so rows added in any
order, in any batch sizes, sum to the same values: a rebuild equals the live
rollup, and two projectors may add to the same row.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime

#: Upper bounds of the latency histogram buckets, in milliseconds; one more bucket is +Inf.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def bucket_of(latency_ms: float) -> int:
    """Index of the histogram bucket holding ``latency_ms`` (upper bounds are inclusive)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def one_hot(latency_ms: float) -> tuple[int, ...]:
    """A histogram with one observation of ``latency_ms``."""
    counts = [0] * BUCKETS
    counts[bucket_of(latency_ms)] = 1
    return tuple(counts)


def add_buckets(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Element-wise sum of two histograms."""
    return tuple(x + y for x, y in zip(a, b, strict=True))


def percentile(buckets: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, interpolated linearly inside its bucket.

    Returns None for an empty histogram; the last finite bound for values in +Inf.
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            high = float(LATENCY_BOUNDS_MS[index])
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


@dataclass(slots=True, kw_only=True)
class AgentMinute:
    """A row of ``agent_metrics_minute``, or a delta to add to it."""

    agent_kind: str
    minute: datetime
    completed: int = 0
    failed: int = 0
    retried: int = 0
    timed_out: int = 0
    latency_us_sum: int = 0
    latency_buckets: tuple[int, ...] = (0,) * BUCKETS
    cache_hits: int = 0
    cache_misses: int = 0
    cache_hit_latency_us: int = 0
    cache_miss_latency_us: int = 0
    cache_latency_saved_us: int = 0
    cache_tokens_saved: int = 0
    cache_evictions: int = 0
    cache_degraded_windows: int = 0


@dataclass(slots=True, kw_only=True)
class LockMinute:
    """A row of ``lock_metrics_minute``, or a delta to add to it."""

    resource: str
    minute: datetime
    requested: int = 0
    granted: int = 0
    queued: int = 0
    denied: int = 0
    released: int = 0
    expired: int = 0
    wait_us_sum: int = 0
    wait_buckets: tuple[int, ...] = (0,) * BUCKETS


Rollup = AgentMinute | LockMinute

_KEYS = ("agent_kind", "resource", "minute")


def add(a: Rollup, b: Rollup) -> Rollup:
    """The sum of two rows with the same key (a new row; neither is changed)."""
    total = replace(a)
    add_into(total, b)
    return total


def add_into(total: Rollup, delta: Rollup) -> None:
    """Add ``delta`` to ``total`` in place (same key)."""
    for f in fields(total):
        if f.name in _KEYS:
            continue
        x, y = getattr(total, f.name), getattr(delta, f.name)
        setattr(total, f.name, add_buckets(x, y) if isinstance(x, tuple) else x + y)


class Rollups:
    """The deltas of one batch, summed per key as they come."""

    def __init__(self) -> None:
        self.agents: dict[tuple[str, datetime], AgentMinute] = {}
        self.locks: dict[tuple[str, datetime], LockMinute] = {}

    def agent(self, kind: str, minute: datetime) -> AgentMinute:
        """The delta row of ``kind`` in ``minute`` (created empty)."""
        row = self.agents.get((kind, minute))
        if row is None:
            row = self.agents[(kind, minute)] = AgentMinute(agent_kind=kind, minute=minute)
        return row

    def lock(self, resource: str, minute: datetime) -> LockMinute:
        """The delta row of ``resource`` in ``minute`` (created empty)."""
        row = self.locks.get((resource, minute))
        if row is None:
            row = self.locks[(resource, minute)] = LockMinute(resource=resource, minute=minute)
        return row

    def add_agent(self, delta: AgentMinute) -> None:
        """Add a whole delta row."""
        add_into(self.agent(delta.agent_kind, delta.minute), delta)

    def sorted_agents(self) -> list[AgentMinute]:
        """The agent rows in key order (a stable lock order for concurrent writers)."""
        return [self.agents[k] for k in sorted(self.agents)]

    def sorted_locks(self) -> list[LockMinute]:
        """The lock rows in key order."""
        return [self.locks[k] for k in sorted(self.locks)]
