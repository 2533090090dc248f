"""Fixtures of the lock integration tests: topics per test, a lock manager, a client, a tail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.runner import LockManager
from agentlog.settings import Settings
from tests.integration.locks.locks_harness import LocksTail, create_topics, fresh_settings


@pytest.fixture
async def settings(kafka_bootstrap: str) -> Settings:
    """Settings with a topic prefix of its own; the locks topic created."""
    s = fresh_settings(kafka_bootstrap)
    await create_topics(s)
    return s


@pytest.fixture
async def manager(settings: Settings) -> AsyncIterator[LockManager]:
    """A lock manager in this process, ready (its group formed, partitions recovered)."""
    async with LockManager(settings) as running:
        async with asyncio.timeout(60):
            await running.wait_ready()
        yield running


@pytest.fixture
async def locks(settings: Settings) -> AsyncIterator[LockClient]:
    async with LockClient(settings, requester="test") as client:
        yield client


@pytest.fixture
async def tail(settings: Settings) -> AsyncIterator[LocksTail]:
    async with LocksTail(settings) as running:
        yield running
