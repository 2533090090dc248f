"""Rebuild a projection from offset zero into a shadow schema, compare it, and swap it in.

1. A projector folds every topic from the beginning into ``<schema>_shadow``
   (dead-lettering nothing: the live projector already did), up to the live
   projection's stored offsets, in rounds while the live one moves on.
2. With the live ``projector_offsets`` locked (the live projector pauses at its
   next batch; readers do not notice), the shadow catches up to exactly the
   live offsets, and the row hashes of both are compared table by table.
3. Unless asked only to compare, each table of the projection is swapped in the
   same transaction (``DROP TABLE`` live, ``ALTER TABLE … SET SCHEMA`` shadow):
   readers see the old rows or the new ones, never an error or an empty table.

The hash of a table is the count and the sum of a 60-bit slice of each row's
md5 (order-independent, constant memory), computed in PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from agentlog.projections.config import DEFAULT_SCHEMA, check_schema
from agentlog.projections.db import CONNECT_TIMEOUT_S, require_dsn
from agentlog.projections.errors import ProjectionError
from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.projections.store import Partition, load_offsets
from agentlog.projections.tables import ALL_TABLES, PROJECTIONS
from agentlog.settings import Settings

logger = logging.getLogger(__name__)

#: Rounds of catching up to a moving live projection before the locked final round.
_ROUNDS = 5
#: Records left behind the live projection that the locked final round may fold.
_CLOSE_ENOUGH = 20_000


@dataclass(frozen=True, slots=True)
class TableHash:
    """The row count and order-independent content hash of a table."""

    rows: int
    digest: str


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild found and did.

    Attributes:
        projection: the projection rebuilt (``all`` or a name of ``PROJECTIONS``).
        live: hash of each table of the live schema.
        rebuilt: hash of each table of the shadow schema, at the same offsets.
        swapped: the tables swapped in.
        records: records the rebuild read.
        seconds: how long it took.
    """

    projection: str
    live: dict[str, TableHash] = field(default_factory=dict)
    rebuilt: dict[str, TableHash] = field(default_factory=dict)
    swapped: list[str] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0

    @property
    def differing(self) -> list[str]:
        """Tables whose rebuilt rows differ from the live ones."""
        return [t for t in self.rebuilt if self.rebuilt[t] != self.live.get(t)]

    @property
    def equal(self) -> bool:
        """True when the rebuild equals the live projection."""
        return not self.differing


def tables_of(projection: str) -> tuple[str, ...]:
    """The tables of ``projection`` (``all`` for every one).

    Raises:
        ProjectionError: an unknown projection name.
    """
    if projection == "all":
        return ALL_TABLES
    if projection not in PROJECTIONS:
        raise ProjectionError(
            f"unknown projection {projection!r}; use all or one of {', '.join(PROJECTIONS)}"
        )
    return PROJECTIONS[projection]


async def table_hashes(conn: Any, schema: str, tables: Sequence[str]) -> dict[str, TableHash]:
    """The :class:`TableHash` of each table of ``schema``."""
    check_schema(schema)
    hashes = {}
    for table in tables:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(r::text), 1, 15))"  # noqa: S608
            f"::bit(60)::bigint::numeric), 0)::text AS h FROM {schema}.{table} AS r"
        )
        hashes[table] = TableHash(rows=row["n"], digest=row["h"])
    return hashes


async def rebuild(
    settings: Settings,
    projection: str = "all",
    *,
    schema: str = DEFAULT_SCHEMA,
    shadow: str | None = None,
    swap: bool = True,
    keep_shadow: bool = False,
    batch_size: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Rebuild ``projection`` of ``schema`` from the topics and swap it in (see the module doc).

    Args:
        settings: broker, PostgreSQL and topic prefix (of the live projector).
        projection: ``all`` or one of :data:`~agentlog.projections.tables.PROJECTIONS`.
        schema: the live schema.
        shadow: the schema to rebuild into (default ``<schema>_shadow``; dropped first).
        swap: swap the rebuilt tables in; False only compares.
        keep_shadow: leave the shadow schema (what was not swapped) for inspection.
        batch_size: records per transaction.
        progress: called with (records read, records to read) after every batch.

    Raises:
        ProjectionError: unknown projection, or the live schema has no projection.
    """
    started = time.monotonic()
    tables = tables_of(projection)
    check_schema(schema)
    shadow = check_schema(shadow or f"{schema}_shadow", "--shadow")
    if shadow == schema:
        raise ProjectionError(f"the shadow schema must differ from the live one ({schema})")
    report = RebuildReport(projection=projection)
    dsn = require_dsn(settings.postgres_dsn)
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        if not await _has_projection(conn, schema):
            raise ProjectionError(
                f"schema {schema} holds no projection to compare with; run "
                "`agentlog projector run` first, or name the live schema with --schema"
            )
        await conn.execute(f"DROP SCHEMA IF EXISTS {shadow} CASCADE")
        config = ProjectorConfig(
            schema=shadow,
            batch_size=batch_size,
            dead_letters=False,
            application_name="agentlog-rebuild",
        )
        projector = Projector(settings, config)
        await projector.open()
        try:
            report.records = await _catch_up(conn, projector, schema, progress)
            await _compare_and_swap(
                conn,
                projector,
                schema=schema,
                shadow=shadow,
                tables=tables,
                swap=swap,
                report=report,
            )
        finally:
            await projector.close()
        if not keep_shadow:
            await conn.execute(f"DROP SCHEMA IF EXISTS {shadow} CASCADE")
    finally:
        await conn.close()
    report.seconds = time.monotonic() - started
    return report


async def _has_projection(conn: Any, schema: str) -> bool:
    found = await conn.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
        " AND table_name = 'projector_offsets'",
        schema,
    )
    return bool(found)


async def _live_offsets(conn: Any, schema: str) -> dict[Partition, int]:
    rows = await conn.fetch(
        f"SELECT topic, kafka_partition, next_offset FROM {schema}.projector_offsets"  # noqa: S608
    )
    return {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}


async def _catch_up(
    conn: Any, projector: Projector, schema: str, progress: Callable[[int, int], None] | None
) -> int:
    """Fold up to the live offsets in rounds until the shadow is close behind; return records."""
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    total = 0
    for _ in range(_ROUNDS):
        targets = await _live_offsets(conn, schema)
        total = sum(targets.values())
        behind = total - sum(projector.committed.get(p, 0) for p in targets)
        await _check_assigned(projector, targets)
        await projector.catch_up(targets, progress=report)
        if behind <= _CLOSE_ENOUGH:
            break
    return done


async def _check_assigned(projector: Projector, targets: Mapping[Partition, int]) -> None:
    assigned = {(tp.topic, tp.partition) for tp in projector.partitions}
    missing = sorted(p for p, off in targets.items() if off > 0 and p not in assigned)
    if missing:
        raise ProjectionError(
            f"the live projection has folded partitions the broker no longer has: {missing[:5]}; "
            "a rebuild from the topics cannot reproduce it (was the broker reset?)"
        )


async def _compare_and_swap(
    conn: Any,
    projector: Projector,
    *,
    schema: str,
    shadow: str,
    tables: Sequence[str],
    swap: bool,
    report: RebuildReport,
) -> None:
    async with conn.transaction():
        # EXCLUSIVE blocks the live projector's next batch (it starts with these rows)
        # but not plain SELECTs: readers carry on.
        await conn.execute(f"LOCK TABLE {schema}.projector_offsets IN EXCLUSIVE MODE")
        targets = await _live_offsets(conn, schema)
        await _check_assigned(projector, targets)
        await projector.catch_up(targets)
        async with projector.pool.acquire() as shadow_conn:
            rebuilt_offsets = await load_offsets(shadow_conn)
        if any(rebuilt_offsets.get(p, 0) != off for p, off in targets.items() if off):
            raise ProjectionError("the rebuild did not reach the live offsets; nothing swapped")
        report.live = await table_hashes(conn, schema, tables)
        report.rebuilt = await table_hashes(conn, shadow, tables)
        if not swap:
            return
        for table in tables:
            await conn.execute(f"DROP TABLE {schema}.{table}")
            await conn.execute(f"ALTER TABLE {shadow}.{table} SET SCHEMA {schema}")
            report.swapped.append(table)
    logger.info("rebuild of %s swapped in %s", report.projection, ", ".join(report.swapped))
