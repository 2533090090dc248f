"""The projector's row cache and in-place folds: the same rows as loading every batch afresh."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from agentlog.projections.cache import RowCache
from agentlog.projections.folds.batch import Changes, Rows, fold_batch, keys_of
from agentlog.projections.records import Record
from agentlog.schemas.events import Envelope, new_envelope
from tests.unit.projections.scenario import as_records, scenario
from tests.unit.projections.test_projections_folds import T0, MemoryStore, interleave, project


class CachedStore(MemoryStore):
    """The store's read path: cached rows, the rest "loaded" (fresh copies), folded in place."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.cache = RowCache(limit)

    def apply(self, batch: Sequence[Record]) -> None:
        new = []
        for r in batch:
            if r.event_id not in self.seen:
                self.seen.add(r.event_id)
                new.append(r)
        loaded, missing = self.cache.take(keys_of(new))
        rows = self.rows
        for name in ("steps", "locks", "lock_requests", "agents"):
            stored, into = getattr(rows, name), getattr(loaded, name)
            into.update({k: replace(stored[k]) for k in getattr(missing, name) if k in stored})
        loaded.workflows.update(
            {
                k: replace(rows.workflows[k], input=None, spec=None, labels="{}")
                for k in missing.workflows
                if k in rows.workflows
            }
        )
        changes = fold_batch(new, loaded, in_place=True)
        self.write(_copied(changes))  # the database holds copies, as PostgreSQL would
        self.cache.committed(changes, {})


def _copied(changes: Changes) -> Changes:
    return replace(
        changes,
        new_workflows=[replace(r) for r in changes.new_workflows],
        updated_workflows=[replace(r) for r in changes.updated_workflows],
        steps=[replace(r) for r in changes.steps],
        locks=[replace(r) for r in changes.locks],
        lock_requests=[replace(r) for r in changes.lock_requests],
        agents=[replace(r) for r in changes.agents],
    )


@pytest.mark.parametrize(("batch", "limit"), [(1, 3), (13, 5), (64, 20_000), (200, 40)])
def test_folding_in_place_through_the_cache_gives_the_same_rows(batch: int, limit: int) -> None:
    records = interleave(as_records(scenario("c", 14)), seed=batch)
    store = CachedStore(limit)
    for start in range(0, len(records), batch):
        store.apply(records[start : start + batch])
    assert store.snapshot() == project(records, len(records))
    assert store.cache.hits > 0
    assert all(len(getattr(store.cache.rows, n)) <= limit for n in ("steps", "workflows"))


def _filled() -> RowCache:
    cache = RowCache(100)
    cache.watch([("t", 0), ("t", 1)])
    assert not cache.check({("t", 0): 5}, [1, 2])  # the first check: nothing to keep
    records = as_records(scenario("c", 2))
    cache.committed(fold_batch(records, Rows()), {("t", 0): 9, ("t", 1): 3})
    assert cache.rows.steps
    return cache


def test_the_cache_is_kept_only_while_the_offsets_and_tables_are_ours() -> None:
    cache = _filled()
    assert cache.check({("t", 0): 9, ("t", 1): 3}, [1, 2])
    assert cache.rows.steps
    # another writer (or a rewind) moved an offset: start over
    assert not cache.check({("t", 0): 9, ("t", 1): 4}, [1, 2])
    assert not cache.rows.steps

    cache = _filled()
    assert not cache.check({("t", 0): 9, ("t", 1): 3}, [1, 3])  # a rebuild swapped a table
    assert not cache.rows.steps

    cache = _filled()
    cache.watch([("t", 0), ("t", 1), ("u", 0)])  # a new partition to own
    assert not cache.rows.steps


def test_a_cleared_cache_loads_everything_again() -> None:
    cache = _filled()
    keys = keys_of(as_records(scenario("c", 2)))
    found, missing = cache.take(keys)
    assert found.steps
    assert not missing.steps
    cache.clear()
    found, missing = cache.take(keys)
    assert not found.steps
    assert missing.steps == keys.steps


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAcquiredByANewerAgentlog:
    """An event type no fold knows (a newer agentlog's), on the journal of a workflow."""

    envelope: Envelope
    workflow_id: str


def test_event_types_no_fold_knows_are_counted_and_change_no_row() -> None:
    records = as_records(scenario("c", 1))
    stranger = LockAcquiredByANewerAgentlog(
        envelope=new_envelope("LockAcquired", "wf", source="t", occurred_at=T0),
        workflow_id=records[0].event.envelope.key,
    )
    extra = Record("agentlog.journal", 0, 10_000, -1, stranger)  # type: ignore[arg-type]
    assert keys_of([extra]) == keys_of([])
    alone = fold_batch([extra], Rows())
    assert alone == Changes(event_counts={("agentlog.journal", "LockAcquired"): 1})
    mixed = fold_batch([*records, extra], Rows())
    plain = fold_batch(records, Rows())
    assert replace(mixed, event_counts=plain.event_counts) == plain
