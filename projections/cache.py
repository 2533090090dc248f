"""Rows the projector wrote in its last batches, so that the next batches need not load them.

A workflow's events arrive on several topics (journal, ``tasks.<kind>``,
responses), so most rows are touched by more than one batch. Loading them back
from PostgreSQL each time (a query, then a dataclass per row) cost as much as
folding them; the projector, being the only writer of the rows of its
partitions, can instead keep what it committed.

The cache must equal the database for every key it holds. Each batch checks,
inside its transaction and before using it, that

* the stored offsets of every partition this projector owns are the ones it
  committed last (another writer of those partitions, or a rewind, moved them), and
* the tables are the same ones (``agentlog rebuild`` swaps tables in);

otherwise the cache starts empty. A batch that fails clears it: its fold
updated cached rows in place before the transaction rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from agentlog.projections.folds.batch import Changes, Keys, Rows
from agentlog.projections.folds.workflows import WorkflowRow

#: (topic, partition)
Partition = tuple[str, int]

_TABLES = ("workflows", "steps", "locks", "lock_requests", "agents")


class RowCache:
    """The committed rows of recently folded keys, per table, least recently used first.

    Args:
        limit: rows kept per table at most.
    """

    def __init__(self, limit: int = 20_000) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit}: at least 1 (or use no cache)")
        self.limit = limit
        self.rows = Rows()
        self.hits = 0
        self.misses = 0
        #: the partitions whose stored offsets must not move behind our back
        self._watched: frozenset[Partition] = frozenset()
        #: their stored next offsets as of our last check or commit
        self._offsets: dict[Partition, int] = {}
        self._tables: tuple[int, ...] = ()

    @property
    def watched(self) -> list[Partition]:
        """The partitions to read offsets of before each batch, sorted."""
        return sorted(self._watched)

    def watch(self, partitions: Iterable[Partition]) -> None:
        """Own ``partitions`` from now on; a change of the set clears the cache.

        Another writer may have folded a newly owned partition's events into
        rows the cache holds, so it starts over.
        """
        owned = frozenset(partitions)
        if owned != self._watched:
            self._watched = owned
            self.clear()

    def check(self, offsets: Mapping[Partition, int], tables: Sequence[int]) -> bool:
        """Keep the rows only if ``offsets`` (stored now) and ``tables`` (their ids) are ours.

        Returns:
            True when the cache was kept.
        """
        tables = tuple(tables)
        kept = tables == self._tables and all(
            offsets.get(p, 0) == off for p, off in self._offsets.items()
        )
        if not kept:
            self.clear()
        self._offsets = {p: offsets.get(p, 0) for p in self._watched | offsets.keys()}
        self._tables = tables
        return kept

    def take(self, keys: Keys) -> tuple[Rows, Keys]:
        """The cached rows of ``keys``, and the keys still to load from the database."""
        found = Rows()
        missing = Keys()
        for name in _TABLES:
            cached: dict[str, Any] = getattr(self.rows, name)
            out: dict[str, Any] = getattr(found, name)
            absent: set[str] = getattr(missing, name)
            for key in getattr(keys, name):
                row = cached.pop(key, None)
                if row is None:
                    absent.add(key)
                else:
                    out[key] = cached[key] = row  # now the most recently used
            self.hits += len(out)
            self.misses += len(absent)
        return found, missing

    def committed(self, changes: Changes, offsets: Mapping[Partition, int]) -> None:
        """A batch committed: keep its rows and its offsets."""
        rows = self.rows
        workflows = rows.workflows
        for new in changes.new_workflows:
            workflows[new.workflow_id] = _lean(new)
        for row in changes.updated_workflows:
            workflows[row.workflow_id] = row
        _keep(rows.steps, {r.task_id: r for r in changes.steps})
        _keep(rows.locks, {r.resource: r for r in changes.locks})
        _keep(rows.lock_requests, {r.request_id: r for r in changes.lock_requests})
        _keep(rows.agents, {r.agent_id: r for r in changes.agents})
        for name in _TABLES:
            _evict(getattr(rows, name), self.limit)
        self._offsets.update(offsets)

    def clear(self) -> None:
        """Forget every row and every offset (the next batch loads and checks again)."""
        self.rows = Rows()
        self._offsets = {}
        self._tables = ()


def _lean(row: WorkflowRow) -> WorkflowRow:
    """A workflow row without the columns an update never writes (as the store loads it).

    Spec and input can be large; the cache need not hold them.
    """
    return replace(row, input=None, spec=None, labels="{}")  # as WORKFLOW_UNLOADED


def _keep(cached: dict[str, Any], rows: dict[str, Any]) -> None:
    for key, row in rows.items():
        cached.pop(key, None)
        cached[key] = row


def _evict(cached: dict[str, Any], limit: int) -> None:
    excess = len(cached) - limit
    if excess > 0:
        for key in list(cached)[:excess]:
            del cached[key]
