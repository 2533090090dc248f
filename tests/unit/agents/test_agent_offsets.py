"""OffsetTracker: a partition commits only up to its lowest unfinished offset."""

from __future__ import annotations

from agentlog.agents.runtime.offsets import OffsetTracker


def tracker_with(*offsets: int, tp: str = "p0") -> OffsetTracker[str]:
    t: OffsetTracker[str] = OffsetTracker()
    t.assign([tp])
    for offset in offsets:
        t.fetched(tp, offset)
    return t


def test_nothing_is_committable_before_anything_is_fetched() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.assign(["p0"])
    assert t.commit_position("p0") is None
    assert t.to_commit() == {}


def test_commit_stops_at_the_lowest_pending_offset() -> None:
    t = tracker_with(10, 11, 12, 13)
    assert t.to_commit() == {"p0": 10}
    t.done("p0", 12)
    t.done("p0", 13)
    assert t.to_commit() == {"p0": 10}, "later tasks finished first: still nothing past 10"
    t.done("p0", 10)
    assert t.to_commit() == {"p0": 11}
    t.done("p0", 11)
    assert t.to_commit() == {"p0": 14}, "all done: commit the next offset to read"


def test_to_commit_reports_only_moved_positions() -> None:
    t = tracker_with(0, 1)
    t.committed(t.to_commit())
    assert t.to_commit() == {}
    t.done("p0", 0)
    assert t.to_commit() == {"p0": 1}


def test_partitions_are_independent() -> None:
    t = tracker_with(5, tp="a")
    t.fetched("b", 7)
    t.done("b", 7)
    assert t.to_commit() == {"a": 5, "b": 8}
    assert t.to_commit(["b"]) == {"b": 8}


def test_advance_settles_records_the_consumer_skipped() -> None:
    t = tracker_with(3)
    t.advance("p0", 6)  # 4 and 5 were poison, dead-lettered by the consumer
    t.done("p0", 3)
    assert t.to_commit() == {"p0": 6}


def test_advance_never_moves_back_and_ignores_untracked_partitions() -> None:
    t = tracker_with(9)
    t.advance("p0", 4)
    t.done("p0", 9)
    assert t.commit_position("p0") == 10
    t.advance("other", 100)
    assert "other" not in t.to_commit()


def test_done_of_an_unknown_offset_changes_nothing() -> None:
    t = tracker_with(1)
    assert not t.done("p0", 7)
    assert not t.done("gone", 1)
    assert t.pending("p0") == frozenset({1})


def test_a_duplicate_fetch_of_the_same_offset_is_one_pending_entry() -> None:
    t = tracker_with(4, 4)
    assert t.done("p0", 4)
    assert t.to_commit() == {"p0": 5}


def test_revoked_partitions_are_forgotten_and_reassigned_ones_start_afresh() -> None:
    t = tracker_with(1, 2)
    t.revoke(["p0"])
    assert t.to_commit() == {}
    assert not t.done("p0", 1), "a task finishing after the revocation settles nothing"
    t.assign(["p0"])
    assert t.commit_position("p0") is None
    t.fetched("p0", 1)  # redelivered from the committed offset
    assert t.to_commit() == {"p0": 1}
