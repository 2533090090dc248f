"""Publishing a task's answer (``TaskCompleted`` / ``TaskFailed``) to ``responses``."""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from agentlog.agents.runtime.errors import OUTPUT_TOO_LARGE, Failure
from agentlog.agents.runtime.execute import Outcome, response_for
from agentlog.schemas.events import TaskRequested
from agentlog.streams.producer import EventProducer


async def publish_answer(
    producer: EventProducer, topic: str, task: TaskRequested, outcome: Outcome, agent_id: str
) -> Outcome:
    """Publish the answer (acks=all); one too large for the broker fails the task instead.

    Any other publishing error propagates and stops the pool: the task stays
    uncommitted and is delivered again.

    Returns:
        the outcome answered (an ``output_too_large`` failure instead of a too large one).
    """
    try:
        response = response_for(task, outcome, agent_id=agent_id)
        await producer.send(topic, response, key=task.workflow_id)
    except (MessageSizeTooLargeError, RecordTooLargeError) as e:
        # otherwise it would fail the same way on every redelivery, forever
        failure = Failure(
            OUTPUT_TOO_LARGE,
            f"the answer is larger than the broker accepts ({e}); store large outputs "
            "elsewhere (a claim-check store) and return a reference",
            False,
        )
        outcome = Outcome(None, failure, outcome.usage)
        response = response_for(task, outcome, agent_id=agent_id)
        await producer.send(topic, response, key=task.workflow_id)
    return outcome
