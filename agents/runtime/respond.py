"""Answering tasks on ``responses`` (``TaskCompleted`` / ``TaskFailed``) and settling them.

The :class:`Responder` is what the sender of :class:`~.answers.Answers` calls:
it produces a batch of finished jobs' answers, keyed by workflow id, and when
the batch is acknowledged it settles each job's deliveries in the offset
tracker (committable from then on) and counts it. An answer larger than the
broker accepts is answered with ``output_too_large`` instead, and one the codec
cannot encode with ``invalid_output``, since it would fail the same way on
every redelivery; any other failure to publish stops the pool, leaving the
task unsettled (delivered again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.agents.runtime.answers import Answers
from agentlog.agents.runtime.errors import OUTPUT_TOO_LARGE, Failure, invalid_output
from agentlog.agents.runtime.execute import Outcome, response_for
from agentlog.agents.runtime.jobs import Job, JobIndex
from agentlog.agents.runtime.offsets import OffsetTracker
from agentlog.errors import SchemaError
from agentlog.schemas.events import TaskRequested
from agentlog.streams.producer import EventProducer

logger = logging.getLogger(__name__)

#: The client (at enqueue) or the broker (in the acknowledgement) refused the answer's size.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)
#: What makes a batch be answered again one job at a time (to find the answer at fault).
ALONE = (*TOO_LARGE, SchemaError)

_Job = Job[TopicPartition]


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


def unencodable(outcome: Outcome, error: SchemaError) -> Outcome:
    """The terminal ``invalid_output`` failure that answers instead of an unencodable answer.

    The output check in :mod:`.execute` should have caught it; if not, the
    task would fail the same way on every redelivery, and take the pool along.
    """
    failure = invalid_output(
        f"the answer cannot be encoded ({error}); return JSON values whose strings UTF-8 can encode"
    )
    return Outcome(None, failure, outcome.usage)


async def enqueue_answer(
    producer: EventProducer, topic: str, task: TaskRequested, outcome: Outcome, agent_id: str
) -> tuple[Outcome, asyncio.Future[RecordMetadata]]:
    """Produce the answer, keyed by the workflow id; do not wait for its acknowledgement.

    An answer the client refuses as too large is replaced by :func:`too_large`
    at once, and one the codec cannot encode by :func:`unencodable`. The
    caller settles the task when the returned future resolves
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
    except SchemaError as e:
        logger.warning(
            "agent %s cannot encode its answer to task %s (workflow %s step %s): %s",
            agent_id,
            task.task_id,
            task.workflow_id,
            task.step,
            e,
        )
        outcome = unencodable(outcome, e)
    response = response_for(task, outcome, agent_id=agent_id)
    return outcome, await producer.enqueue(topic, response, key=task.workflow_id)


@dataclass(slots=True)
class Counts:
    """What one pool did with its tasks so far (see ``PoolStats``)."""

    completed: int = 0
    failed: int = 0
    duplicates: int = 0
    handed_back: int = 0
    cancelled: int = 0


class Responder:
    """Produces finished jobs' answers in batches, and settles each job once acknowledged.

    Args:
        topic: the full name of ``responses``.
        agent_id: who answers (``agent_id`` of the answers, log lines).
        jobs: the pool's jobs (a settled job is finished there).
        tracker: the pool's offsets (a settled job's deliveries are done there).
        counts: the pool's counters.
        fail: stops the pool with the error and where it happened.

    Attributes:
        settled: called after each job settled (fetching may have room again).
    """

    def __init__(
        self,
        topic: str,
        agent_id: str,
        *,
        jobs: JobIndex[TopicPartition],
        tracker: OffsetTracker[TopicPartition],
        counts: Counts,
        fail: Callable[[BaseException, str], None],
    ) -> None:
        self.topic = topic
        self.agent_id = agent_id
        self.producer: EventProducer | None = None  # set when the pool starts
        self.answers: Answers[_Job] = Answers(self.produce, self.acked, self.failed)
        self._jobs = jobs
        self._tracker = tracker
        self._counts = counts
        self.settled: Callable[[], None] = _nothing
        self._fail = fail

    def answer(self, job: _Job, outcome: Outcome) -> None:
        """Queue ``job``'s answer (``outcome``); it is settled when acknowledged."""
        job.outcome = outcome
        self.answers.put(job)

    async def produce(self, jobs: list[_Job]) -> asyncio.Future[Any]:
        """Produce the answers of ``jobs`` (the sender of :attr:`answers` calls it).

        One job goes through :func:`enqueue_answer`; more go as one batch per
        partition (``enqueue_batch``), and if that is refused as too large or
        one answer cannot be encoded, the returned future fails, so that
        :meth:`failed` answers each alone.
        """
        producer = self.producer
        if producer is None:
            raise RuntimeError(f"agent pool {self.agent_id} is not started; use `async with`")
        agent_id = self.agent_id
        if len(jobs) == 1:
            job = jobs[0]
            job.outcome, future = await enqueue_answer(
                producer, self.topic, job.task, _outcome(job), agent_id
            )
            return future
        responses = [response_for(job.task, _outcome(job), agent_id=agent_id) for job in jobs]
        try:
            return await producer.enqueue_batch(self.topic, responses)
        except ALONE as e:  # one is too large or unencodable: nothing was queued
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(e)
            return refused

    def acked(self, job: _Job) -> None:
        """``job``'s answer is acknowledged: settle its deliveries (committable now), count it."""
        done = self._tracker.done
        for tp, offset in self._jobs.finish(job):
            done(tp, offset)
        self.settled()
        outcome = _outcome(job)
        task, failure = job.task, outcome.failure
        if failure is None:
            self._counts.completed += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "agent %s completed task %s (workflow %s step %s) in %.1f ms",
                    self.agent_id,
                    task.task_id,
                    task.workflow_id,
                    task.step,
                    outcome.usage.latency_ms,
                )
            return
        self._counts.failed += 1
        if job.cancelled is not None:
            self._counts.cancelled += 1
        logger.info(
            "agent %s failed task %s (workflow %s step %s attempt %s): %s%s: %s",
            self.agent_id,
            task.task_id,
            task.workflow_id,
            task.step,
            task.attempt,
            failure.kind,
            "" if failure.retryable else " (terminal)",
            failure.message,
        )

    def failed(self, jobs: list[_Job], error: BaseException) -> None:
        """The answers of ``jobs`` could not be published: unsettled; the pool stops.

        Except when refused as too large or unencodable: a batch is answered
        again one job at a time (to find the one at fault; those of the batch
        that reached another partition are in ``responses`` twice, which the
        orchestrator ignores), and a job alone too large with
        ``output_too_large`` instead (:func:`enqueue_answer` replaces an
        unencodable one).
        """
        if isinstance(error, ALONE) and len(jobs) > 1:
            for job in jobs:
                self.answers.put_alone(job)
            return
        if isinstance(error, TOO_LARGE):
            job = jobs[0]
            outcome = _outcome(job)
            if outcome.failure is None or outcome.failure.kind != OUTPUT_TOO_LARGE:
                job.outcome = too_large(outcome, error)
                self.answers.put_alone(job)
                return
        task = jobs[0].task
        self._fail(error, f"answering task {task.task_id} (workflow {task.workflow_id})")


def _nothing() -> None:
    pass


def _outcome(job: _Job) -> Outcome:
    if job.outcome is None:
        raise RuntimeError(f"task {job.task.task_id} has no outcome to answer with")
    return job.outcome
