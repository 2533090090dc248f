"""The per-partition durable timer heap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentlog.agents.orchestrator import TimerHeap
from agentlog.workflow import TimerFired

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def timer(workflow_id: str, seconds: float, timer_id: str = "deadline:x") -> TimerFired:
    return TimerFired(
        workflow_id=workflow_id, timer_id=timer_id, due_at=T0 + timedelta(seconds=seconds)
    )


def test_pop_due_returns_due_timers_earliest_first_and_keeps_later_ones() -> None:
    heap = TimerHeap()
    heap.set("a", timer("a", 5))
    heap.set("b", timer("b", 1))
    heap.set("c", timer("c", 10))
    assert heap.next_due() == T0 + timedelta(seconds=1)
    assert [t.workflow_id for t in heap.pop_due(T0 + timedelta(seconds=5))] == ["b", "a"]
    assert heap.next_due() == T0 + timedelta(seconds=10)
    assert len(heap) == 1
    assert heap.pop_due(T0) == []


def test_a_workflow_has_one_timer_the_latest_set_wins() -> None:
    heap = TimerHeap()
    heap.set("a", timer("a", 1, "retry:1"))
    heap.set("a", timer("a", 7, "deadline:2"))
    assert len(heap) == 1
    assert heap.next_due() == T0 + timedelta(seconds=7)  # the stale entry is skipped
    assert heap.pop_due(T0 + timedelta(seconds=100)) == [timer("a", 7, "deadline:2")]
    assert heap.next_due() is None


def test_setting_none_or_discarding_removes_the_timer() -> None:
    heap = TimerHeap()
    heap.set("a", timer("a", 1))
    heap.set("b", timer("b", 2))
    heap.set("a", None)
    heap.discard("b")
    assert heap.next_due() is None
    assert heap.pop_due(T0 + timedelta(days=1)) == []


def test_setting_the_same_timer_again_fires_it_once() -> None:
    heap = TimerHeap()
    heap.set("a", timer("a", 1))
    heap.set("a", timer("a", 2))
    heap.set("a", timer("a", 1))
    assert heap.pop_due(T0 + timedelta(seconds=5)) == [timer("a", 1)]
    assert heap.pop_due(T0 + timedelta(seconds=5)) == []


def test_many_workflows_come_out_in_due_order() -> None:
    heap = TimerHeap()
    for i in range(500):
        heap.set(f"wf-{i}", timer(f"wf-{i}", (i * 7919) % 500))
    fired = heap.pop_due(T0 + timedelta(seconds=1000))
    assert [t.due_at for t in fired] == sorted(t.due_at for t in fired)
    assert len(fired) == 500
