"""AgentRunner: every demo agent kind in one process, sharing one producer."""

from __future__ import annotations

import pytest

from agentlog.agents.demo import DEMO_AGENTS
from agentlog.agents.runtime import AgentRunner
from agentlog.schemas.events import TaskCompleted
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from tests.integration.agents.agent_support import Reader, publish, task_event

pytestmark = pytest.mark.timeout(90)


async def test_the_demo_agents_run_in_one_process(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    review = task_event("reviewer", {"repo": "acme/shop", "pr": 42}, step="review")
    noop = task_event("noop", {"ping": 1}, step="noop")
    async with AgentRunner(DEMO_AGENTS, settings, heartbeat_interval=1.0) as runner:
        assert {p.kind for p in runner.pools} == {a.kind for a in DEMO_AGENTS}
        await publish(settings, producer, review, noop)  # topics made by the runner
        answers = await responses.for_tasks({review.task_id, noop.task_id})
    done = answers[review.task_id]
    assert isinstance(done, TaskCompleted)
    assert done.output == {"approved": True, "comments": ["LGTM acme/shop#42"]}
    assert done.usage.input_tokens > 0
    echoed = answers[noop.task_id]
    assert isinstance(echoed, TaskCompleted)
    assert echoed.output == {"ping": 1}
    assert runner.pools == []  # stopped
