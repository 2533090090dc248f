"""Agent-runtime test fixtures on a real broker: a topic prefix per test, a producer, readers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS, DEADLETTER, RESPONSES, ensure_topics
from tests.integration.agents.agent_support import Reader


@pytest.fixture
async def settings(kafka_bootstrap: str) -> Settings:
    """Settings under a topic prefix no other test uses, with responses, agents, dead letters.

    Create each agent's ``tasks.<kind>`` with ``make_topics``.
    """
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        partitions=2,
        source="test",
    )
    await ensure_topics(s, [RESPONSES, AGENTS, DEADLETTER])
    return s


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    """A started producer for the test's own events."""
    async with EventProducer(settings, client_id="test-producer") as p:
        yield p


@pytest.fixture
async def responses(settings: Settings) -> AsyncIterator[Reader]:
    """A reader of the test's ``responses`` topic (create the topics first)."""
    async with Reader(settings, settings.topic(RESPONSES.name)) as reader:
        yield reader


@pytest.fixture
async def registrations(settings: Settings) -> AsyncIterator[Reader]:
    """A reader of the test's ``agents`` topic (create the topics first)."""
    async with Reader(settings, settings.topic(AGENTS.name)) as reader:
        yield reader
