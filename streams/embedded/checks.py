"""Does a server answer? One check per kind, each with a deadline and a clear error.

Used both as the readiness probe of an embedded server and to check an external
server named by a setting before anything starts, so a wrong address fails in
seconds with a :class:`ConnectError` naming the setting and its value.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agentlog.errors import ConnectError

logger = logging.getLogger(__name__)

KAFKA_SETTING = "AGENTLOG_KAFKA_BOOTSTRAP"
POSTGRES_SETTING = "AGENTLOG_POSTGRES_DSN"
REDIS_SETTING = "AGENTLOG_REDIS_URL"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _problem(error: BaseException) -> str:
    name = type(error).__name__
    text = str(error).strip().rstrip(".")
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


async def check_kafka(
    bootstrap: str,
    *,
    setting: str = KAFKA_SETTING,
    within: float = 5.0,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Raise unless a Kafka-compatible broker at ``bootstrap`` answers a metadata request.

    Args:
        bootstrap: ``host:port[,host:port…]``.
        setting: the name to blame in the error (variable or flag).
        within: seconds for the whole check.
        client_options: security options, as from ``Settings.kafka_client_options()``.

    Raises:
        ConnectError: naming ``setting`` and ``bootstrap``.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    fix = f"Start a broker there or correct {setting}"
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(within * 1000)),
        **dict(client_options or {}),
    )
    try:
        async with asyncio.timeout(within):
            await admin.start()
    except TimeoutError:
        raise ConnectError(setting, bootstrap, f"no answer within {within:g}s", fix) from None
    except (KafkaError, OSError) as e:
        raise ConnectError(setting, bootstrap, _problem(e), fix) from e
    finally:
        await admin.close()


async def check_postgres(dsn: str, *, setting: str = POSTGRES_SETTING, within: float = 5.0) -> None:
    """Raise unless PostgreSQL at ``dsn`` accepts the login and answers ``SELECT 1``.

    Raises:
        ConnectError: naming ``setting`` and the DSN (password redacted).
    """
    asyncpg: Any = importlib.import_module("asyncpg")  # untyped: no stubs

    fix = f"Check host, port, user, password and database in {setting}"
    try:
        async with asyncio.timeout(within):
            conn = await asyncpg.connect(dsn, timeout=within)
            try:
                await conn.fetchval("SELECT 1")
            finally:
                await conn.close()
    except TimeoutError:
        raise ConnectError(setting, redact(dsn), f"no answer within {within:g}s", fix) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as e:
        raise ConnectError(setting, redact(dsn), _problem(e), fix) from e


async def check_redis(url: str, *, setting: str = REDIS_SETTING, within: float = 5.0) -> None:
    """Raise unless Redis at ``url`` answers ``PING``.

    Raises:
        ConnectError: naming ``setting`` and the URL (password redacted).
    """
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    fix = f"Start Redis there or correct {setting}"
    try:
        client = Redis.from_url(url, socket_connect_timeout=within, socket_timeout=within)
    except ValueError as e:
        raise ConnectError(setting, redact(url), _problem(e), fix) from e
    try:
        async with asyncio.timeout(within):
            await client.ping()
    except TimeoutError:
        raise ConnectError(setting, redact(url), f"no answer within {within:g}s", fix) from None
    except (RedisError, OSError) as e:
        raise ConnectError(setting, redact(url), _problem(e), fix) from e
    finally:
        await client.aclose()
