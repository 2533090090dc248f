"""SQL for writing and loading read-model rows in bulk: COPY into a staging table, then merge.

One :class:`Table` per read model maps a row dataclass to its columns. A
batch's rows go to a session-local temporary table with binary ``COPY`` (the
cheapest way into PostgreSQL for the client and the server), and one
``INSERT … SELECT … ON CONFLICT`` or ``UPDATE … FROM`` merges them into the
read model. The staging tables are emptied at every COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from operator import attrgetter
from typing import Any, Literal

from agentlog.projections.folds.agents import AgentRow
from agentlog.projections.folds.archive import ArchiveRow, DeadLetterRow
from agentlog.projections.folds.locks import LockRequestRow, LockRow, queue_from_json, queue_json
from agentlog.projections.folds.metrics import AgentMinute, LockMinute
from agentlog.projections.folds.steps import StepRow
from agentlog.projections.folds.workflows import MUTABLE_COLUMNS, WorkflowRow

Merge = Literal["insert", "upsert", "add", "update"]


@dataclass(frozen=True)
class Table:
    """A read-model table and the dataclass of its rows.

    Attributes:
        name: the table (unqualified: the pool's search_path selects the schema).
        row: the row dataclass; its fields are the columns, in table order.
        key: primary-key columns.
        json: columns of type json or jsonb (rows hold them as JSON text).
        encoders: column -> function from the field value to what COPY sends.
        decoders: column -> function from the loaded value to the field value.
    """

    name: str
    row: type
    key: tuple[str, ...]
    json: frozenset[str]
    encoders: dict[str, Callable[[Any], Any]]
    decoders: dict[str, Callable[[Any], Any]]

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column, in table order."""
        return tuple(f.name for f in fields(self.row))

    def stage(self, use: str = "in") -> str:
        """The name of the session's staging table for ``use``."""
        return f"{self.name}_{use}"

    def create_stage_sql(self, use: str = "in") -> str:
        """Create the staging table (same columns, no constraints) unless the session has it."""
        query = f"SELECT * FROM {self.name} WITH NO DATA"  # noqa: S608 - our names
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage(use)} ON COMMIT DELETE ROWS AS {query}"

    def merge_sql(
        self,
        mode: Merge,
        *,
        columns: Sequence[str] | None = None,
        use: str = "in",
        returning: str = "",
    ) -> str:
        """The statement that merges the staging table into the table.

        ``insert`` keeps existing rows, ``upsert`` replaces every non-key
        column, ``add`` adds every non-key column (rollups, element-wise for
        arrays), ``update`` sets ``columns`` of existing rows only.
        """
        cols = list(columns or self.columns)
        source = self.stage(use)
        key = ", ".join(self.key)
        values = [c for c in cols if c not in self.key]
        if mode == "update":
            sets = ", ".join(f"{c} = v.{c}" for c in values)
            match = " AND ".join(f"t.{k} = v.{k}" for k in self.key)
            return f"UPDATE {self.name} AS t SET {sets} FROM {source} AS v WHERE {match}"  # noqa: S608
        col_list = ", ".join(cols)
        sql = f"INSERT INTO {self.name} AS t ({col_list}) SELECT {col_list} FROM {source}"  # noqa: S608
        if mode == "insert":
            sql += " ON CONFLICT DO NOTHING"
        elif mode == "upsert":
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
            sql += f" ON CONFLICT ({key}) DO UPDATE SET {sets}"
        else:
            sql += f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(map(self._add, values))
        return f"{sql} RETURNING {returning}" if returning else sql

    def _add(self, column: str) -> str:
        if column.endswith("_buckets"):
            pairs = f"unnest(t.{column}, EXCLUDED.{column}) WITH ORDINALITY AS x(a, b, i)"
            return f"{column} = ARRAY(SELECT a + b FROM {pairs} ORDER BY i)"  # noqa: S608
        return f"{column} = t.{column} + EXCLUDED.{column}"

    def records(
        self, rows: Sequence[Any], columns: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        """``rows`` as tuples of ``columns`` (default all), encoded for COPY."""
        chosen = tuple(columns or self.columns)
        values_of = self._getter(chosen)
        encoders = [(i, self.encoders[c]) for i, c in enumerate(chosen) if c in self.encoders]
        if not encoders:
            return list(map(values_of, rows))
        out = []
        for r in rows:
            values = list(values_of(r))
            for i, encode in encoders:
                if values[i] is not None:
                    values[i] = encode(values[i])
            out.append(tuple(values))
        return out

    def _getter(self, columns: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
        # attrgetter of several names returns a tuple, built in C: the hot path of every write
        getters: dict[tuple[str, ...], Any] = self.__dict__.setdefault("_getters", {})
        getter = getters.get(columns)
        if getter is None:
            one = attrgetter(*columns)
            getter = getters[columns] = one if len(columns) > 1 else lambda r: (one(r),)
        return getter

    def load_sql(self, columns: Sequence[str] | None = None) -> str:
        """SELECT of rows whose (single-column) key is in the array ``$1``."""
        (key,) = self.key
        cols = ", ".join(columns or self.columns)
        return f"SELECT {cols} FROM {self.name} WHERE {key} = ANY($1::text[])"  # noqa: S608

    def from_record(self, record: Any, **defaults: Any) -> Any:
        """A row dataclass from a loaded asyncpg record (missing columns from ``defaults``)."""
        values = {**defaults, **record}
        for c, decode in self.decoders.items():
            value = values.get(c)
            if value is not None:
                values[c] = decode(value)
        return self.row(**values)


def _table(
    name: str, row: type, key: tuple[str, ...], *, json_columns: tuple[str, ...] = ()
) -> Table:
    decoders: dict[str, Callable[[Any], Any]] = {
        f.name: tuple for f in fields(row) if f.name.endswith("_buckets")
    }
    return Table(name, row, key, frozenset(json_columns), {}, decoders)


EVENTS = _table("events", ArchiveRow, ("event_id",), json_columns=("payload",))
WORKFLOWS = _table(
    "workflows", WorkflowRow, ("workflow_id",), json_columns=("input", "spec", "labels", "output")
)
STEPS = _table("steps", StepRow, ("task_id",), json_columns=("output",))
LOCKS = _table("locks", LockRow, ("resource",), json_columns=("queue",))
LOCKS.encoders["queue"] = queue_json
LOCKS.decoders["queue"] = lambda text: queue_from_json(json.loads(text))
LOCK_REQUESTS = _table("lock_requests", LockRequestRow, ("request_id",))
AGENTS = _table("agents", AgentRow, ("agent_id",))
DEAD_LETTERS = _table("dead_letters", DeadLetterRow, ("event_id",), json_columns=("headers",))
AGENT_MINUTES = _table("agent_metrics_minute", AgentMinute, ("agent_kind", "minute"))
LOCK_MINUTES = _table("lock_metrics_minute", LockMinute, ("resource", "minute"))

#: Columns loaded for existing workflows (the rest never change after the first event).
WORKFLOW_LOAD_COLUMNS: tuple[str, ...] = (
    "workflow_id",
    "definition",
    "version",
    "priority",
    "request_event_id",
    "correlation_id",
    "created_at",
    "started_at",
    "idempotency_key",
    *MUTABLE_COLUMNS,
)
#: Placeholders for the workflow columns that are not loaded (never written back).
WORKFLOW_UNLOADED = {"input": None, "spec": None, "labels": "{}"}

#: Every table of the read models, by projection name (what ``agentlog rebuild`` swaps).
PROJECTIONS: dict[str, tuple[str, ...]] = {
    "events": ("events", "event_counts"),
    "workflows": ("workflows",),
    "steps": ("steps",),
    "locks": ("locks", "lock_requests"),
    "agents": ("agents",),
    "dead_letters": ("dead_letters",),
    "metrics": ("agent_metrics_minute", "lock_metrics_minute"),
}
ALL_TABLES: tuple[str, ...] = tuple(t for tables in PROJECTIONS.values() for t in tables)
