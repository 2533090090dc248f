"""Retry backoff: exponential, capped, with deterministic jitter."""

from __future__ import annotations

import hashlib

from agentlog.workflow.spec import RetryPolicy


def backoff_ms(policy: RetryPolicy, task_id: str, attempt: int) -> int:
    """Milliseconds to wait after failed attempt ``attempt`` before the next one.

    ``initial_backoff_ms * multiplier ** (attempt - 1)`` capped at
    ``max_backoff_ms``, then moved by up to ``± jitter`` of itself. The jitter
    comes from a hash of the task id (workflow, step, run, item and attempt),
    so a replay computes the same delay while parallel items spread out.

    Args:
        policy: the step's retry policy.
        task_id: id of the failed attempt.
        attempt: number of the failed attempt, from 1.
    """
    exponent = max(attempt - 1, 0)
    try:
        raw = policy.initial_backoff_ms * policy.multiplier**exponent
    except OverflowError:
        raw = float(policy.max_backoff_ms)
    base = min(float(policy.max_backoff_ms), raw)
    spread = base * policy.jitter * (2.0 * unit_hash(task_id) - 1.0)
    return int(max(0.0, min(float(policy.max_backoff_ms), base + spread)))


def unit_hash(text: str) -> float:
    """A number in ``[0, 1)`` from a stable hash of ``text`` (not Python's salted ``hash``)."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
