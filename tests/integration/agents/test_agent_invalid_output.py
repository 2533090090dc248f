"""An output the Avro codec cannot encode fails its task; the pool goes on with the others."""

from __future__ import annotations

import pytest

from agentlog.agents.runtime import INVALID_OUTPUT, Agent, AgentPool, TaskContext, TerminalError
from agentlog.schemas.events import JsonValue, TaskCompleted, TaskFailed
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from tests.integration.agents.agent_support import Reader, make_topics, publish, task_event

pytestmark = pytest.mark.timeout(90)


async def test_a_lone_surrogate_fails_the_task_and_the_pool_goes_on(
    settings: Settings, producer: EventProducer, responses: Reader
) -> None:
    async def handle(ctx: TaskContext) -> JsonValue:
        match ctx.input:
            case {"do": "surrogate"}:
                return {"text": "\ud800"}  # UTF-8 cannot encode it
            case {"do": "surrogate_message"}:
                raise TerminalError("bad_input", "cannot read \udcff")
        return {"text": "fine é 😀"}

    kind = Agent("unicode", handle, concurrency=2)
    await make_topics(settings, kind)
    bad = task_event("unicode", {"do": "surrogate"}, step="bad")
    bad_message = task_event("unicode", {"do": "surrogate_message"}, step="bad_message")
    good = task_event("unicode", {}, step="good")
    async with AgentPool(kind, settings) as pool:
        await publish(settings, producer, bad, bad_message, good)
        answers = await responses.for_tasks({bad.task_id, bad_message.task_id, good.task_id})
        later = task_event("unicode", {}, step="later")
        await publish(settings, producer, later)
        [after] = (await responses.for_tasks({later.task_id})).values()
        assert pool.failure is None
    failed = answers[bad.task_id]
    assert isinstance(failed, TaskFailed)
    assert (failed.error_kind, failed.retryable) == (INVALID_OUTPUT, False)
    assert "lone surrogate" in failed.message
    assert "$.text" in failed.message
    message = answers[bad_message.task_id]
    assert isinstance(message, TaskFailed)
    assert (message.error_kind, message.retryable) == ("bad_input", False)
    assert message.message == "cannot read \\udcff"
    done = answers[good.task_id]
    assert isinstance(done, TaskCompleted)
    assert done.output == {"text": "fine é 😀"}
    assert isinstance(after, TaskCompleted)
