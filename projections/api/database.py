"""The API's PostgreSQL: a lazily created pool whose failures become 503s, never 500s."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from agentlog.projections.db import TRANSIENT_ERRORS, close_pool, create_pool, describe
from agentlog.projections.errors import DatabaseUnavailable

#: Seconds a request waits for a connection before answering 503.
ACQUIRE_TIMEOUT_S = 3.0


class Database:
    """The read models of one schema, as the API reads them.

    The pool is created on first use, so the API starts (and answers 503)
    while PostgreSQL is down, and recovers by itself when it is back.
    """

    def __init__(self, dsn: str, schema: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self.schema = schema
        self.max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def pool(self) -> Any:
        """The pool, created now if needed.

        Raises:
            DatabaseUnavailable: PostgreSQL cannot be reached.
        """
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(
                    self.dsn,
                    self.schema,
                    min_size=0,
                    max_size=self.max_size,
                    application_name="agentlog-api",
                    command_timeout=30.0,
                )
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection; connection failures inside the block raise DatabaseUnavailable.

        Raises:
            DatabaseUnavailable: PostgreSQL is down or restarting, or the
                projection schema has no read models yet.
        """
        pool = await self.pool()
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield conn
        except asyncpg.exceptions.UndefinedTableError as e:
            raise DatabaseUnavailable(
                f"schema {self.schema} has no read models yet ({describe(e)}); start "
                "`agentlog projector run` so it creates and fills them"
            ) from e
        except TRANSIENT_ERRORS as e:
            raise DatabaseUnavailable(describe(e)) from e

    async def close(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        await close_pool(pool)
