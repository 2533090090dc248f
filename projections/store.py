"""One batch, one transaction: offsets checked, events archived, rows folded and written.

:func:`apply_batch` is the exactly-once step. Inside one transaction it

1. locks the batch's rows of ``projector_offsets`` and drops records below the
   stored next offsets (a redelivered batch, or a second projector that got
   there first);
2. looks up which event ids the ``events`` archive has already (it keeps one
   row per event id); only the others are archived and folded (a producer
   retry or a re-decided event at a later offset is a duplicate);
3. takes the rows the new events touch from the :class:`~.cache.RowCache` or
   loads them, then ``COPY``s the new events into the archive while it folds
   them in memory with the pure folds (the ``COPY`` runs in a task fed
   between pieces of the fold, so PostgreSQL inserts while Python folds), and
   writes each table with a few set-based statements: new rows copied
   (``COPY``) straight into the table, changed rows copied into a staging
   table and merged (``INSERT … ON CONFLICT`` / ``UPDATE … FROM``);
4. stores the next offsets.

A crash anywhere before COMMIT leaves nothing behind; after COMMIT the
offsets say so. Redelivery is harmless either way.

Rows are "new" when neither the cache nor the database had them: the
projector is the only writer of its partitions' rows, so a plain ``COPY`` is
safe. Should a second writer insert the same key meanwhile, the batch fails
with a unique violation and is retried from the start (:data:`RETRY_ERRORS`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from agentlog.projections.cache import Partition, RowCache
from agentlog.projections.db import TRANSIENT_ERRORS
from agentlog.projections.folds.archive import archive_tuples
from agentlog.projections.folds.batch import BatchFold, Changes, Keys, Rows, keys_of
from agentlog.projections.folds.workflows import MUTABLE_COLUMNS
from agentlog.projections.records import Record
from agentlog.projections.tables import (
    AGENT_MINUTES,
    AGENTS,
    DEAD_LETTERS,
    EVENTS,
    LOCK_MINUTES,
    LOCK_REQUESTS,
    LOCKS,
    STEPS,
    WORKFLOW_LOAD_COLUMNS,
    WORKFLOW_UNLOADED,
    WORKFLOWS,
    Merge,
    Table,
)

__all__ = ["RETRY_ERRORS", "BatchOutcome", "Partition", "RowCache", "apply_batch", "load_offsets"]

#: Errors after which a batch is written again from the start: the transient ones, and a
#: unique violation (a second writer inserted a row this batch thought new; see above).
RETRY_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.UniqueViolationError)

_ENSURE_OFFSETS = """
INSERT INTO projector_offsets (topic, kafka_partition)
SELECT * FROM unnest($1::text[], $2::int[])
ON CONFLICT DO NOTHING
"""
_LOCK_OFFSETS = """
SELECT o.topic, o.kafka_partition, o.next_offset
FROM projector_offsets o
JOIN unnest($1::text[], $2::int[]) AS u(topic, kafka_partition) USING (topic, kafka_partition)
ORDER BY o.topic, o.kafka_partition
FOR UPDATE OF o
"""
_READ_OFFSETS = """
SELECT o.topic, o.kafka_partition, o.next_offset
FROM projector_offsets o
JOIN unnest($1::text[], $2::int[]) AS u(topic, kafka_partition) USING (topic, kafka_partition)
"""
_STORE_OFFSETS = """
UPDATE projector_offsets o SET next_offset = u.next_offset, updated_at = now()
FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(topic, kafka_partition, next_offset)
WHERE o.topic = u.topic AND o.kafka_partition = u.kafka_partition
"""
_CACHED_TABLES = (WORKFLOWS, STEPS, LOCKS, LOCK_REQUESTS, AGENTS)
#: The ids of the cached tables: a rebuild swaps tables in, and the cache must not survive it.
_TABLE_IDS = "SELECT ARRAY[{}]::oid[]".format(
    ", ".join(f"'{t.name}'::regclass" for t in _CACHED_TABLES)
)
_EXISTING_EVENTS = "SELECT event_id FROM events WHERE event_id = ANY($1::text[])"
#: Every staging table a batch may use, created once per session.
_STAGES = ";\n".join(
    [
        *(t.create_stage_sql() for t in (STEPS, LOCKS, LOCK_REQUESTS, AGENTS, DEAD_LETTERS)),
        WORKFLOWS.create_stage_sql("upd"),
        AGENT_MINUTES.create_stage_sql(),
        LOCK_MINUTES.create_stage_sql(),
    ]
)
#: Records folded between two turns of the event loop while the archive ``COPY`` runs.
_FOLD_STEP = 500
_ADD_COUNTS = """
INSERT INTO event_counts AS t (topic, type, events)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (topic, type) DO UPDATE SET events = t.events + EXCLUDED.events
"""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one committed batch did.

    Attributes:
        folded: events folded (new to the projection).
        redelivered: records dropped because the stored offsets were past them.
        duplicates: records dropped because their event id was archived before.
        offsets: the next offsets stored, per partition of the batch.
    """

    folded: int
    redelivered: int
    duplicates: int
    offsets: dict[Partition, int]


async def load_offsets(
    conn: Any, partitions: Sequence[Partition] | None = None
) -> dict[Partition, int]:
    """The stored next offset of each partition (all stored ones if ``partitions`` is None)."""
    rows = await conn.fetch("SELECT topic, kafka_partition, next_offset FROM projector_offsets")
    stored = {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}
    if partitions is None:
        return stored
    return {p: stored.get(p, 0) for p in partitions}


async def apply_batch(
    conn: Any,
    records: Sequence[Record],
    positions: Mapping[Partition, int],
    *,
    notify: str | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    cache: RowCache | None = None,
    archive: Sequence[tuple[Any, ...]] | None = None,
) -> BatchOutcome:
    """Fold ``records`` and store ``positions`` (next offset per partition) in one transaction.

    Args:
        conn: an asyncpg connection with the projection schema on its search_path.
        records: decoded records in log order per partition.
        positions: the next offset to read per partition once this batch is done
            (past poison records and tombstones too, which have no record here).
        notify: a channel to NOTIFY (on commit) when the batch folded new events.
        before_commit: awaited inside the transaction just before COMMIT (fault
            injection: tests cancel or fail here to prove a crash leaves nothing).
        cache: rows of earlier batches (of this writer only); checked before use,
            updated after COMMIT, cleared when anything fails.
        archive: ``archive_tuples(records)``, if the caller built them already
            (the projector does, outside the transaction).
    """
    try:
        outcome, changes = await _transaction(
            conn,
            records,
            positions,
            notify=notify,
            before_commit=before_commit,
            cache=cache,
            archive=archive,
        )
    except BaseException:
        if cache is not None:
            cache.clear()
        raise
    if cache is not None:
        cache.committed(changes, outcome.offsets)
    return outcome


async def _transaction(
    conn: Any,
    records: Sequence[Record],
    positions: Mapping[Partition, int],
    *,
    notify: str | None,
    before_commit: Callable[[], Awaitable[None]] | None,
    cache: RowCache | None,
    archive: Sequence[tuple[Any, ...]] | None,
) -> tuple[BatchOutcome, Changes]:
    parts = sorted(positions)
    changes = Changes()
    async with conn.transaction():
        await conn.execute(_STAGES)
        topics = [p[0] for p in parts]
        numbers = [p[1] for p in parts]
        await conn.execute(_ENSURE_OFFSETS, topics, numbers)
        stored = {
            (r["topic"], r["kafka_partition"]): r["next_offset"]
            for r in await conn.fetch(_LOCK_OFFSETS, topics, numbers)
        }
        if cache is not None:
            await _check_cache(conn, cache, stored)
        rows = archive_tuples(records) if archive is None else archive
        fresh = [
            i for i, r in enumerate(records) if r.offset >= stored.get((r.topic, r.partition), 0)
        ]
        new, new_rows = await _new_events(conn, records, rows, fresh)
        if new:
            keys = keys_of(new)
            loaded = await _load(conn, keys, cache)
            changes = await _archive_and_fold(conn, new, new_rows, loaded)
            await _write(conn, changes, loaded)
        advanced = {p: max(stored.get(p, 0), off) for p, off in positions.items()}
        changed = [p for p in parts if advanced[p] != stored.get(p, 0)]
        if changed:
            await conn.execute(
                _STORE_OFFSETS,
                [p[0] for p in changed],
                [p[1] for p in changed],
                [advanced[p] for p in changed],
            )
        if notify is not None and new:
            await conn.execute("SELECT pg_notify($1, $2)", notify, str(len(new)))
        if before_commit is not None:
            await before_commit()
    outcome = BatchOutcome(
        folded=len(new),
        redelivered=len(records) - len(fresh),
        duplicates=len(fresh) - len(new),
        offsets=advanced,
    )
    return outcome, changes


async def _check_cache(conn: Any, cache: RowCache, locked: Mapping[Partition, int]) -> None:
    watched = [p for p in cache.watched if p not in locked]
    offsets = dict(locked)
    if watched:
        rows = await conn.fetch(_READ_OFFSETS, [p[0] for p in watched], [p[1] for p in watched])
        offsets.update({(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows})
    cache.check(offsets, await conn.fetchval(_TABLE_IDS))


async def _new_events(
    conn: Any, records: Sequence[Record], rows: Sequence[tuple[Any, ...]], fresh: Sequence[int]
) -> tuple[list[Record], list[tuple[Any, ...]]]:
    """The ``fresh`` records (indexes) whose event id the archive does not have, and their rows.

    ``rows`` are the archive rows of ``records``, in the same order. A duplicate
    inside the batch counts once (the first one).
    """
    if not fresh:
        return [], []
    unique: dict[str, int] = {}
    for index in fresh:
        unique.setdefault(rows[index][0], index)
    archived = {r[0] for r in await conn.fetch(_EXISTING_EVENTS, list(unique))}
    chosen = [i for e, i in unique.items() if e not in archived] if archived else unique.values()
    return [records[i] for i in chosen], [rows[i] for i in chosen]


async def _archive_and_fold(
    conn: Any, new: Sequence[Record], rows: Sequence[tuple[Any, ...]], loaded: Rows
) -> Changes:
    """``COPY`` the archive rows while folding the records: PostgreSQL and Python work at once.

    The ``COPY`` runs in a task that sends rows as the socket takes them; the
    fold goes in pieces of :data:`_FOLD_STEP` records and yields between them,
    so the task keeps PostgreSQL busy inserting the archive (its biggest
    write) instead of waiting for the fold to end.
    """
    fold = BatchFold(loaded, in_place=True)
    copying = asyncio.ensure_future(
        conn.copy_records_to_table(EVENTS.name, records=rows, columns=EVENTS.columns)
    )
    try:
        for start in range(0, len(new), _FOLD_STEP):
            fold.apply(new[start : start + _FOLD_STEP])
            await asyncio.sleep(0)
    except BaseException:
        copying.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await copying
        raise
    await copying
    return fold.changes()


async def _load_rows(conn: Any, table: Table, keys: set[str], into: dict[str, Any]) -> None:
    if not keys:
        return
    (key,) = table.key
    from_record = table.from_record
    for r in await conn.fetch(table.load_sql(), list(keys)):
        into[r[key]] = from_record(r)


async def _load(conn: Any, keys: Keys, cache: RowCache | None) -> Rows:
    """The current rows of ``keys``: from the cache, the rest from the database."""
    rows, missing = cache.take(keys) if cache is not None else (Rows(), keys)
    if missing.workflows:
        sql = WORKFLOWS.load_sql(WORKFLOW_LOAD_COLUMNS)
        for r in await conn.fetch(sql, list(missing.workflows)):
            rows.workflows[r["workflow_id"]] = WORKFLOWS.from_record(r, **WORKFLOW_UNLOADED)
    await _load_rows(conn, STEPS, missing.steps, rows.steps)
    await _load_rows(conn, LOCKS, missing.locks, rows.locks)
    await _load_rows(conn, LOCK_REQUESTS, missing.lock_requests, rows.lock_requests)
    await _load_rows(conn, AGENTS, missing.agents, rows.agents)
    return rows


async def _copy(conn: Any, table: Table, rows: Sequence[Any]) -> None:
    """``COPY`` rows no one has written yet straight into ``table``."""
    if rows:
        await conn.copy_records_to_table(
            table.name, records=table.records(rows), columns=table.columns
        )


async def _merge(
    conn: Any,
    table: Table,
    rows: Sequence[Any],
    mode: Merge,
    *,
    columns: Sequence[str] | None = None,
    use: str = "in",
) -> None:
    if not rows:
        return
    await conn.copy_records_to_table(
        table.stage(use), records=table.records(rows, columns), columns=columns
    )
    await conn.execute(table.merge_sql(mode, columns=columns, use=use))


async def _upsert(conn: Any, table: Table, rows: Sequence[Any], loaded: Mapping[str, Any]) -> None:
    """New rows by ``COPY``, rows that existed (``loaded``) by a merge."""
    if not rows:
        return
    (key,) = table.key
    new = [r for r in rows if getattr(r, key) not in loaded]
    await _copy(conn, table, new)
    if len(new) < len(rows):
        await _merge(conn, table, [r for r in rows if getattr(r, key) in loaded], "upsert")


async def _write(conn: Any, changes: Changes, loaded: Rows) -> None:
    await _copy(conn, WORKFLOWS, changes.new_workflows)
    await _merge(
        conn,
        WORKFLOWS,
        changes.updated_workflows,
        "update",
        columns=(*WORKFLOWS.key, *MUTABLE_COLUMNS),
        use="upd",
    )
    await _upsert(conn, STEPS, changes.steps, loaded.steps)
    await _upsert(conn, LOCKS, changes.locks, loaded.locks)
    await _upsert(conn, LOCK_REQUESTS, changes.lock_requests, loaded.lock_requests)
    await _upsert(conn, AGENTS, changes.agents, loaded.agents)
    await _merge(conn, DEAD_LETTERS, changes.dead_letters, "insert")
    await _merge(conn, AGENT_MINUTES, changes.agent_minutes, "add")
    await _merge(conn, LOCK_MINUTES, changes.lock_minutes, "add")
    if changes.event_counts:
        keys = sorted(changes.event_counts)
        await conn.execute(
            _ADD_COUNTS,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [changes.event_counts[k] for k in keys],
        )
