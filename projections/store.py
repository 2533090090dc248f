"""One batch, one transaction: offsets checked, events archived, rows folded and written.

:func:`apply_batch` is the exactly-once step. Inside one transaction it

1. locks the batch's rows of ``projector_offsets`` and drops records below the
   stored next offsets (a redelivered batch, or a second projector that got
   there first);
2. inserts the records into the ``events`` archive, which keeps one row per
   event id, and folds only the events that were new (a producer retry or a
   re-decided event at a later offset is a duplicate);
3. loads the rows the new events touch, folds them with the pure folds, and
   writes the changed rows in bulk;
4. stores the next offsets.

A crash anywhere before COMMIT leaves nothing behind; after COMMIT the
offsets say so. Redelivery is harmless either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentlog.projections.folds.archive import archive_columns
from agentlog.projections.folds.batch import Changes, Keys, Rows, fold_batch, keys_of
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

#: (topic, partition)
Partition = tuple[str, int]

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
_STORE_OFFSETS = """
UPDATE projector_offsets o SET next_offset = u.next_offset, updated_at = now()
FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(topic, kafka_partition, next_offset)
WHERE o.topic = u.topic AND o.kafka_partition = u.kafka_partition
"""
_ARCHIVE_SQL = EVENTS.merge_sql("insert", returning="event_id")
#: Every staging table a batch may use, created once per session.
_STAGES = ";\n".join(
    [
        *(
            t.create_stage_sql()
            for t in (EVENTS, WORKFLOWS, STEPS, LOCKS, LOCK_REQUESTS, AGENTS, DEAD_LETTERS)
        ),
        WORKFLOWS.create_stage_sql("upd"),
        AGENT_MINUTES.create_stage_sql(),
        LOCK_MINUTES.create_stage_sql(),
    ]
)
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
    """
    parts = sorted(positions)
    async with conn.transaction():
        await conn.execute(_STAGES)
        topics = [p[0] for p in parts]
        numbers = [p[1] for p in parts]
        await conn.execute(_ENSURE_OFFSETS, topics, numbers)
        stored = {
            (r["topic"], r["kafka_partition"]): r["next_offset"]
            for r in await conn.fetch(_LOCK_OFFSETS, topics, numbers)
        }
        fresh = [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]
        new = await _archive(conn, fresh)
        if new:
            changes = fold_batch(new, await _load(conn, keys_of(new)))
            await _write(conn, changes)
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
    return BatchOutcome(
        folded=len(new),
        redelivered=len(records) - len(fresh),
        duplicates=len(fresh) - len(new),
        offsets=advanced,
    )


async def _archive(conn: Any, records: Sequence[Record]) -> list[Record]:
    """Insert the records into ``events``; return those whose event id was new, in order."""
    if not records:
        return []
    seen: set[str] = set()
    unique: list[Record] = []
    for record in records:
        event_id = record.event.envelope.event_id
        if event_id not in seen:  # a duplicate inside the batch: the first one wins
            seen.add(event_id)
            unique.append(record)
    await conn.copy_records_to_table(
        EVENTS.stage(), records=list(zip(*archive_columns(unique), strict=True))
    )
    inserted = await conn.fetch(_ARCHIVE_SQL)
    new_ids = {r["event_id"] for r in inserted}
    return [r for r in unique if r.event.envelope.event_id in new_ids]


async def _load_rows(conn: Any, table: Table, keys: set[str]) -> dict[str, Any]:
    if not keys:
        return {}
    (key,) = table.key
    records = await conn.fetch(table.load_sql(), sorted(keys))
    return {r[key]: table.from_record(r) for r in records}


async def _load(conn: Any, keys: Keys) -> Rows:
    workflows = {}
    if keys.workflows:
        records = await conn.fetch(
            WORKFLOWS.load_sql(WORKFLOW_LOAD_COLUMNS), sorted(keys.workflows)
        )
        workflows = {
            r["workflow_id"]: WORKFLOWS.from_record(r, **WORKFLOW_UNLOADED) for r in records
        }
    return Rows(
        workflows=workflows,
        steps=await _load_rows(conn, STEPS, keys.steps),
        locks=await _load_rows(conn, LOCKS, keys.locks),
        lock_requests=await _load_rows(conn, LOCK_REQUESTS, keys.lock_requests),
        agents=await _load_rows(conn, AGENTS, keys.agents),
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


async def _write(conn: Any, changes: Changes) -> None:
    await _merge(conn, WORKFLOWS, changes.new_workflows, "insert")
    await _merge(
        conn,
        WORKFLOWS,
        changes.updated_workflows,
        "update",
        columns=(*WORKFLOWS.key, *MUTABLE_COLUMNS),
        use="upd",
    )
    await _merge(conn, STEPS, changes.steps, "upsert")
    await _merge(conn, LOCKS, changes.locks, "upsert")
    await _merge(conn, LOCK_REQUESTS, changes.lock_requests, "upsert")
    await _merge(conn, AGENTS, changes.agents, "upsert")
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
