"""Fixtures of the orchestrator integration tests: a topic prefix per test, a journal tail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentlog.settings import Settings
from agentlog.workflow.demos import DEMOS
from tests.integration.orchestrator.harness import JournalTail, create_topics, fresh_settings

#: Every agent kind the demo workflows use.
DEMO_KINDS = sorted({step.agent for spec in DEMOS for step in spec.steps if step.agent})


@pytest.fixture
async def settings(kafka_bootstrap: str) -> Settings:
    """Settings with a topic prefix of its own; the catalogue and demo task topics created."""
    s = fresh_settings(kafka_bootstrap)
    await create_topics(s, DEMO_KINDS)
    return s


@pytest.fixture
async def tail(settings: Settings) -> AsyncIterator[JournalTail]:
    """Every journal event of the test's topics, folded per workflow."""
    async with JournalTail(settings) as journal:
        yield journal
