"""Fenced sinks: apply a write only if its fencing token is not older than the newest seen.

A lease can end while its holder still runs (a GC or VM pause, a network
partition): the holder then writes late, after a newer holder. The lock
manager cannot stop that write; the sink can. Each sink remembers, per
resource, the highest fencing token it has accepted and refuses writes that
carry a lower one, **atomically with the write**:

* PostgreSQL (:class:`PostgresFence`): a ``fence`` table, one row per
  resource, claimed with ``INSERT … ON CONFLICT (resource) DO UPDATE … WHERE
  fence.token <= EXCLUDED.token`` in the same transaction as the write. The
  row lock serialises concurrent writers of one resource.
* Redis (:class:`RedisFence`): a Lua script compares and sets the token key,
  then runs the write, in one atomic script.

Equal tokens are accepted: a holder may write many times under one lease (a
token belongs to exactly one grant). Pass ``strict=True`` for "one write per
token".
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import FenceError

T = TypeVar("T")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class FenceResult(Generic[T]):
    """What a fenced write did. True when applied.

    Attributes:
        applied: the token was current and the write ran (and committed).
        resource: the resource.
        token: the token the write carried.
        current: the sink's newest token for the resource after the call.
        value: what the write returned (None when not applied).
    """

    applied: bool
    resource: str
    token: int
    current: int | None
    value: T | None = None

    def __bool__(self) -> bool:
        return self.applied


# -- PostgreSQL ------------------------------------------------------------------------


class PostgresFence:
    """Fencing for PostgreSQL writes (asyncpg): a table of the newest token per resource.

    ```python
    fence = PostgresFence()                      # table agentlog_fences
    await fence.create_table(pool)
    result = await fence.apply(pool, "repo:org/name", lease.token, lambda conn: conn.execute(
        "UPDATE deploy_slots SET version = $1 WHERE repo = $2", version, repo))
    if not result:
        ...  # a newer holder wrote already: this write was refused
    ```

    Args:
        table: the fence table, ``name`` or ``schema.name`` (letters, digits, ``_``).
        strict: refuse a second write with the same token (default: allow it).
    """

    def __init__(self, table: str = "agentlog_fences", *, strict: bool = False) -> None:
        parts = table.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
            raise FenceError(
                f"table={table!r}: use a plain identifier or schema.identifier "
                "(letters, digits, '_'), e.g. 'agentlog_fences'"
            )
        self.table = ".".join(f'"{p}"' for p in parts)
        self.strict = strict
        op = "<" if strict else "<="
        # identifiers are validated above; values are always bind parameters
        self.create_sql = (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "resource text PRIMARY KEY, token bigint NOT NULL, "
            "updated_at timestamptz NOT NULL DEFAULT now())"
        )
        self.claim_sql = (
            f"INSERT INTO {self.table} AS fence (resource, token) VALUES ($1, $2) "  # noqa: S608
            "ON CONFLICT (resource) DO UPDATE SET token = EXCLUDED.token, updated_at = now() "
            f"WHERE fence.token {op} EXCLUDED.token RETURNING token"
        )
        self.current_sql = f"SELECT token FROM {self.table} WHERE resource = $1"  # noqa: S608

    async def create_table(self, db: Any) -> None:
        """Create the fence table if missing (``db``: an asyncpg connection or pool)."""
        async with _connection(db) as conn:
            await self._execute(conn.execute(self.create_sql), "creating the fence table")

    async def claim(self, conn: Any, resource: str, token: int) -> bool:
        """Inside the caller's transaction: record ``token`` if it is not older; True if so.

        Run the write in the same transaction only when this returns True;
        the fence row stays locked until the transaction ends.
        """
        row = await self._execute(conn.fetchrow(self.claim_sql, resource, token), "claiming")
        return row is not None

    async def apply(
        self,
        db: Any,
        resource: str,
        token: int,
        write: Callable[[Any], Awaitable[T]] | None = None,
    ) -> FenceResult[T]:
        """Run ``write(conn)`` in one transaction with the fence check, if ``token`` is current.

        Args:
            db: an asyncpg connection or pool.
            resource: the locked resource.
            token: the lease's fencing token.
            write: the write, given the connection inside the transaction;
                its errors propagate unchanged and roll everything back.

        Raises:
            FenceError: the fence statement failed (server down, no table).
        """
        async with _connection(db) as conn, conn.transaction():
            if not await self.claim(conn, resource, token):
                current = await self._execute(
                    conn.fetchval(self.current_sql, resource), "reading the fence"
                )
                return FenceResult(False, resource, token, current)
            value = await write(conn) if write is not None else None
            return FenceResult(True, resource, token, token, value)

    async def current(self, db: Any, resource: str) -> int | None:
        """The newest token accepted for ``resource`` (None: no write yet)."""
        async with _connection(db) as conn:
            value = await self._execute(
                conn.fetchval(self.current_sql, resource), "reading the fence"
            )
        return int(value) if value is not None else None

    async def _execute(self, call: Awaitable[T], what: str) -> T:
        try:
            return await call
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            raise FenceError(
                f"{what} in {self.table} failed: {type(e).__name__}: {e}; check the "
                "database and that create_table() ran"
            ) from e


@contextlib.asynccontextmanager
async def _connection(db: Any) -> AsyncIterator[Any]:
    """A connection: ``db`` itself, or one from the pool ``db`` (errors of the pool translated)."""
    if not isinstance(db, asyncpg.Pool):
        yield db
        return
    try:
        conn = await db.acquire()
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
        raise FenceError(f"no PostgreSQL connection from the pool: {type(e).__name__}: {e}") from e
    try:
        yield conn
    finally:
        await db.release(conn)


# -- Redis -------------------------------------------------------------------------------

_CHECK_LUA = """\
local current = redis.call('GET', KEYS[1])
local token = tonumber(ARGV[1])
if current and tonumber(current) {op} token then
  return {{0, current}}
end
redis.call('SET', KEYS[1], ARGV[1])
local keys, args = {{}}, {{}}
for i = 2, #KEYS do keys[i - 1] = KEYS[i] end
for i = 2, #ARGV do args[i - 1] = ARGV[i] end
local function write(KEYS, ARGV)
{body}
end
return {{1, ARGV[1], write(keys, args)}}
"""


@dataclass(frozen=True, slots=True)
class FencedScript:
    """A Lua write run after the token check, in the same atomic script.

    The body sees its own keys as ``KEYS[1..]`` and arguments as ``ARGV[1..]``
    (the fence key and the token are taken off), and may return a value.
    Build one with :func:`fenced_script`.
    """

    body: str
    strict: bool = False

    @property
    def lua(self) -> str:
        """The whole script."""
        return _CHECK_LUA.format(op=">=" if self.strict else ">", body=self.body)


def fenced_script(body: str, *, strict: bool = False) -> FencedScript:
    """A fenced Redis write from a Lua body.

    Example body: ``"return redis.call('SET', KEYS[1], ARGV[1])"``.
    """
    return FencedScript(body, strict)


SET = fenced_script(
    "if ARGV[2] and ARGV[2] ~= '' then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "end return redis.call('SET', KEYS[1], ARGV[1])"
)
HSET = fenced_script("return redis.call('HSET', KEYS[1], unpack(ARGV))")
DELETE = fenced_script("return redis.call('DEL', unpack(KEYS))")


class RedisFence:
    """Fencing for Redis writes: the newest token per resource, checked by a Lua script.

    ```python
    fence = RedisFence(redis.asyncio.from_url("redis://127.0.0.1:6379/0"))
    result = await fence.set("repo:org/name", lease.token, "deploy:{repo:org/name}", "v42")
    ```

    The fence key is ``<prefix>{<resource>}``: in Redis Cluster, give the data
    keys the same hash tag (``{<resource>}``) so that the script's keys share a slot.
    Tokens are compared as Lua numbers (exact up to 2**53).

    Args:
        client: a ``redis.asyncio.Redis``.
        prefix: the fence keys' prefix.
        strict: refuse a second write with the same token, in every write of this
            fence (default: allow it, a lease may write many times). Use it where
            one token must write once, e.g. a task redelivered after a crash
            carries the token of the first attempt.
    """

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "agentlog:fence:", strict: bool = False
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.strict = strict
        self._scripts: dict[str, Any] = {}

    def key(self, resource: str) -> str:
        """The key holding the newest token of ``resource``."""
        return f"{self.prefix}{{{resource}}}"

    async def set(
        self, resource: str, token: int, key: str, value: str | bytes, *, px_ms: int | None = None
    ) -> FenceResult[Any]:
        """``SET key value [PX px_ms]`` if ``token`` is current."""
        return await self.run(SET, resource, token, [key], [value, "" if px_ms is None else px_ms])

    async def hset(
        self, resource: str, token: int, key: str, mapping: dict[str, str | int | float]
    ) -> FenceResult[Any]:
        """``HSET key field value …`` if ``token`` is current."""
        args: list[str | int | float] = [x for pair in mapping.items() for x in pair]
        return await self.run(HSET, resource, token, [key], args)

    async def delete(self, resource: str, token: int, *keys: str) -> FenceResult[Any]:
        """``DEL keys…`` if ``token`` is current."""
        return await self.run(DELETE, resource, token, list(keys), [])

    async def run(
        self,
        script: FencedScript,
        resource: str,
        token: int,
        keys: Sequence[str],
        args: Sequence[str | bytes | int | float],
    ) -> FenceResult[Any]:
        """Run a fenced script: the token check and ``script``'s write, atomically.

        A strict fence runs every script strictly; a strict script is strict anyway.

        Raises:
            FenceError: Redis failed or the script is broken; nothing was written
                unless the script itself wrote before failing.
        """
        if self.strict and not script.strict:
            script = FencedScript(script.body, strict=True)
        lua = script.lua
        registered = self._scripts.get(lua)
        if registered is None:
            registered = self._scripts[lua] = self.client.register_script(lua)
        try:
            reply = await registered(keys=[self.key(resource), *keys], args=[token, *args])
        except (RedisError, OSError) as e:
            raise FenceError(
                f"fenced write of {resource!r} (token {token}) failed: {type(e).__name__}: {e}"
            ) from e
        applied = int(reply[0]) == 1
        current = int(reply[1])
        value = reply[2] if applied and len(reply) > 2 else None
        return FenceResult(applied, resource, token, current, value)

    async def current(self, resource: str) -> int | None:
        """The newest token accepted for ``resource`` (None: no write yet)."""
        try:
            value = await self.client.get(self.key(resource))
        except (RedisError, OSError) as e:
            raise FenceError(f"reading the fence of {resource!r} failed: {e}") from e
        return int(value) if value is not None else None
