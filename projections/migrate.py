"""Versioned SQL migrations of the read models, applied at start (``schema_migrations``).

Migrations are the numbered files ``migrations/NNNN_name.sql`` shipped as
package data. Each runs once per schema, in its own transaction, with
``search_path`` set to that schema; the version, name and a checksum of the
file are recorded in ``<schema>.schema_migrations``. A session-level advisory
lock per schema lets many projector and API processes start at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agentlog.projections.config import check_schema
from agentlog.projections.errors import MigrationError

logger = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: First key of the advisory lock that serialises migrations (the second is the schema's hash).
_LOCK_CLASS = 0x616C6F67  # "alog"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text: a migration must never change once applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Every migration shipped with this agentlog, by version.

    Raises:
        MigrationError: two files share a version, or a version is missing.
    """
    folder = resources.files("agentlog.projections").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(
            f"migrations must be numbered 1, 2, 3, … without gaps or repeats; found {versions}"
        )
    return found


async def migrate(conn: Any, schema: str) -> list[int]:
    """Bring ``schema`` up to the newest migration; return the versions applied now.

    Args:
        conn: an asyncpg connection (not in a transaction).
        schema: the projection schema; created if missing.

    Raises:
        MigrationError: the schema was migrated by a newer agentlog, or an applied
            migration's file changed since.
    """
    check_schema(schema)
    migrations = load_migrations()
    await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCK_CLASS, schema)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(
            f"SELECT version, checksum FROM {schema}.schema_migrations"  # noqa: S608 - checked name
        )
        applied = {r["version"]: r["checksum"] for r in rows}
        _check_applied(schema, applied, migrations)
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("schema %s: applied migration %04d_%s", schema, *_vn(migration))
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, schema)


def _vn(migration: Migration) -> tuple[int, str]:
    return migration.version, migration.name


def _check_applied(schema: str, applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    newer = sorted(v for v in applied if v not in known)
    if newer:
        raise MigrationError(
            f"schema {schema} has migrations {newer} that this agentlog does not know: it was "
            "written by a newer version. Run that version, or rebuild into a fresh schema."
        )
    for version, checksum in applied.items():
        if known[version].checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{known[version].name} changed after it was applied to "
                f"schema {schema}. Never edit an applied migration; add a new one instead."
            )
