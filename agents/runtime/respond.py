"""Producing a task's answer (``TaskCompleted`` / ``TaskFailed``) to ``responses``."""

from __future__ import annotations

import asyncio

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import RecordMetadata

from agentlog.agents.runtime.errors import OUTPUT_TOO_LARGE, Failure
from agentlog.agents.runtime.execute import Outcome, response_for
from agentlog.schemas.events import TaskRequested
from agentlog.streams.producer import EventProducer

#: The client (at enqueue) or the broker (in the acknowledgement) refused the answer's size.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def too_large(outcome: Outcome, error: BaseException) -> Outcome:
    """The terminal ``output_too_large`` failure that answers instead of a too large answer.

    Otherwise the task would fail the same way on every redelivery, forever.
    """
    failure = Failure(
        OUTPUT_TOO_LARGE,
        f"the answer is larger than the broker accepts ({error}); store large outputs "
        "elsewhere (a claim-check store) and return a reference",
        False,
    )
    return Outcome(None, failure, outcome.usage)


async def enqueue_answer(
    producer: EventProducer, topic: str, task: TaskRequested, outcome: Outcome, agent_id: str
) -> tuple[Outcome, asyncio.Future[RecordMetadata]]:
    """Produce the answer, keyed by the workflow id; do not wait for its acknowledgement.

    An answer the client refuses as too large is replaced by :func:`too_large`
    at once. The caller settles the task when the returned future resolves
    (acks=all); if it fails with one of :data:`TOO_LARGE` (the broker's limit
    is lower than the client's), it answers :func:`too_large` instead.

    Returns:
        the outcome answered and the future of its acknowledgement.
    """
    try:
        response = response_for(task, outcome, agent_id=agent_id)
        return outcome, await producer.enqueue(topic, response, key=task.workflow_id)
    except TOO_LARGE as e:
        outcome = too_large(outcome, e)
        response = response_for(task, outcome, agent_id=agent_id)
        return outcome, await producer.enqueue(topic, response, key=task.workflow_id)
