"""PostgreSQL access shared by the projector, the rebuild and the API: pools and transient errors.

Every pool sets ``search_path`` to the projection schema, so the SQL of the
read models is unqualified and the same statements serve the live schema, a
shadow schema of a rebuild, and the unique schema of a test.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from agentlog.errors import ConfigError
from agentlog.projections.config import check_schema
from agentlog.projections.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to open one connection.
CONNECT_TIMEOUT_S = 5.0
#: Seconds one statement may run before the client gives up (catch-up batches included).
COMMAND_TIMEOUT_S = 120.0

#: Errors after which the same work may succeed on a fresh connection.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is a subclass)
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization, deadlock
    asyncpg.exceptions.InvalidCachedStatementError,  # a rebuild swapped a table
    # the protocol state of a connection the server dropped mid-COPY, seen on the next call
    asyncpg.exceptions.InternalClientError,
)


def is_transient(error: BaseException) -> bool:
    """True for errors a retry on a fresh connection may cure (server restart, network)."""
    return isinstance(error, TRANSIENT_ERRORS)


def describe(error: BaseException) -> str:
    """A one-line description of a driver error for logs and 503 bodies."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def require_dsn(dsn: str | None) -> str:
    """``dsn`` or a ConfigError naming AGENTLOG_POSTGRES_DSN."""
    if not dsn:
        raise ConfigError(
            "AGENTLOG_POSTGRES_DSN",
            dsn,
            "no PostgreSQL address is set",
            "Set AGENTLOG_POSTGRES_DSN=postgresql://user:password@host:5432/db, pass "
            "--postgres, or start `agentlog dev`.",
        )
    return dsn


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    application_name: str = "agentlog",
    command_timeout: float = COMMAND_TIMEOUT_S,
    synchronous_commit: bool = True,
    custom_plans: bool = False,
    fast_timestamps: bool = False,
) -> Any:
    """An asyncpg pool whose connections use ``schema`` as ``search_path``.

    ``fast_timestamps`` sends and reads ``timestamptz`` values through
    :func:`encode_timestamptz` / :func:`decode_timestamptz` (same values, a
    third of the client CPU of asyncpg's own codec, which took half the time of the
    projector's ``COPY`` rows).

    ``custom_plans`` sets ``plan_cache_mode = force_custom_plan``: every
    execution of a prepared statement is planned with its parameters. The
    projector needs it: asyncpg prepares (and caches) every statement, and
    PostgreSQL switches a prepared statement to a generic plan after five
    executions. A generic plan made while a fresh table was nearly empty is a
    sequential scan that compares each row with every element of ``= ANY($1)``
    (no hashing for a parameter array): on a catch-up from offset zero, loading
    the ``steps`` rows of a batch grew to 0.7 s and half the database time.

    Raises:
        DatabaseUnavailable: the server cannot be reached within the connect timeout.
    """
    check_schema(schema)
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=command_timeout,
            max_inactive_connection_lifetime=60.0,
            init=_fast_timestamps if fast_timestamps else None,
            server_settings={
                "search_path": schema,
                "application_name": application_name,
                "synchronous_commit": "on" if synchronous_commit else "off",
                **({"plan_cache_mode": "force_custom_plan"} if custom_plans else {}),
            },
        )
    except TRANSIENT_ERRORS as e:
        raise DatabaseUnavailable(describe(e)) from e


#: PostgreSQL's epoch: ``timestamptz`` is an int64 of microseconds since then.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INFINITY = 2**63 - 1
_NEGATIVE_INFINITY = -(2**63)


def encode_timestamptz(value: datetime | date) -> tuple[int]:
    """A ``timestamptz`` parameter as asyncpg's ``tuple`` format: ``(microseconds since 2000,)``.

    The values asyncpg's own encoder gives: an aware datetime at its instant, a
    naive one in local time, a date at local midnight, ``datetime.max`` /
    ``datetime.min`` as ``infinity`` / ``-infinity``.
    """
    try:
        return ((value - _PG_EPOCH) // _MICROSECOND,)
    except TypeError:  # naive, or a date
        pass
    if value == datetime.max:
        return (_INFINITY,)
    if value == datetime.min:
        return (_NEGATIVE_INFINITY,)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return ((value.astimezone(UTC) - _PG_EPOCH) // _MICROSECOND,)


def decode_timestamptz(value: tuple[int]) -> datetime:
    """The inverse of :func:`encode_timestamptz`: an aware UTC datetime (as asyncpg gives)."""
    (micros,) = value
    if micros == _INFINITY:
        return datetime.max
    if micros == _NEGATIVE_INFINITY:
        return datetime.min
    return _PG_EPOCH + timedelta(microseconds=micros)


async def _fast_timestamps(conn: Any) -> None:
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=encode_timestamptz,
        decoder=decode_timestamptz,
        format="tuple",
    )


async def close_pool(pool: Any) -> None:
    """Close a pool, terminating connections that do not close within a few seconds."""
    if pool is None:
        return
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except TRANSIENT_ERRORS:  # TimeoutError is one of them
        pool.terminate()


async def retry_transient(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    stopping: Callable[[], bool] = lambda: False,
    initial_delay: float = 0.1,
    max_delay: float = 2.0,
    on_retry: Callable[[BaseException], None] | None = None,
    errors: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
) -> T:
    """Run ``work`` until it succeeds or raises a non-transient error.

    Transient failures (``errors``, by default :data:`TRANSIENT_ERRORS`) are logged and retried
    with exponential backoff up to ``max_delay`` seconds, forever: a projector
    must outlive a PostgreSQL restart. ``stopping()`` True ends the loop with
    :class:`DatabaseUnavailable`.
    """
    delay = initial_delay
    failures = 0
    while True:
        try:
            return await work()
        except errors as e:
            failures += 1
            if stopping():
                raise DatabaseUnavailable(describe(e)) from e
            if on_retry is not None:
                on_retry(e)
            log = logger.warning if failures in (1, 10) or failures % 100 == 0 else logger.debug
            log("%s failed (%s); retry %d in %.1f s", what, describe(e), failures, delay)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
