"""PriorityBuffer: higher priority first, first-in first-out within a priority."""

from __future__ import annotations

import pytest

from agentlog.agents.runtime.buffer import PriorityBuffer


def test_higher_priority_starts_first_and_ties_keep_arrival_order() -> None:
    b: PriorityBuffer[str] = PriorityBuffer(10)
    for name, priority in [("low-1", 1), ("mid-1", 3), ("high-1", 5), ("low-2", 1), ("high-2", 5)]:
        b.push(name, priority)
    assert [b.pop() for _ in range(len(b))] == ["high-1", "high-2", "mid-1", "low-1", "low-2"]


def test_full_is_advisory() -> None:
    b: PriorityBuffer[int] = PriorityBuffer(2)
    b.push(1, 3)
    assert not b.full
    b.push(2, 3)
    assert b.full
    b.push(3, 3)  # never refused: fetched records must be kept
    assert len(b) == 3


def test_remove_if_returns_removed_items_in_start_order_and_keeps_the_rest_ordered() -> None:
    b: PriorityBuffer[str] = PriorityBuffer(10)
    for i, priority in enumerate([1, 5, 3, 5, 2]):
        b.push(f"{'x' if i % 2 else 'y'}{i}", priority)
    removed = b.remove_if(lambda s: s.startswith("x"))
    assert removed == ["x1", "x3"]
    assert [b.pop() for _ in range(len(b))] == ["y2", "y4", "y0"]


def test_clear_and_pop_from_empty() -> None:
    b: PriorityBuffer[str] = PriorityBuffer(1)
    b.push("a", 1)
    assert b.clear() == ["a"]
    with pytest.raises(IndexError):
        b.pop()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity=0"):
        PriorityBuffer[int](0)
