"""Responder: answers in batches, settled when acknowledged; bad answers are found alone.

Answers too large or that the codec cannot encode are replaced by terminal failures.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import TopicPartition

from agentlog.agents.runtime import TaskContext
from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.jobs import Job, JobIndex
from agentlog.agents.runtime.offsets import OffsetTracker
from agentlog.agents.runtime.respond import Counts, Responder
from agentlog.schemas.events import Event, TaskCompleted, TaskFailed, TaskUsage
from agentlog.streams.codec import AvroCodec

TP = TopicPartition("tasks", 0)
BIG = "x" * 100
UNENCODABLE = {"text": "\ud800"}  # past the output check (an Outcome built here): the net


class Producer:
    """Refuses, at enqueue, single answers with a big output and batches holding one.

    Encodes every answer first, as ``EventProducer`` does (a SchemaError queues nothing).
    """

    def __init__(self) -> None:
        self.sent: list[list[Event]] = []
        self.acks: list[asyncio.Future[Any]] = []

    def _ack(self, events: list[Event]) -> asyncio.Future[Any]:
        self.sent.append(events)
        future = asyncio.get_running_loop().create_future()
        self.acks.append(future)
        return future

    async def enqueue(self, topic: str, event: Event, *, key: str) -> asyncio.Future[Any]:
        AvroCodec.default().encode(event)
        if isinstance(event, TaskCompleted) and event.output == BIG:
            raise MessageSizeTooLargeError("too big for a request")
        return self._ack([event])

    async def enqueue_batch(self, topic: str, events: list[Event]) -> asyncio.Future[Any]:
        for event in events:
            AvroCodec.default().encode(event)
        if any(isinstance(e, TaskCompleted) and e.output == BIG for e in events):
            raise MessageSizeTooLargeError("too big for a request")
        return self._ack(list(events))


class Setup:
    def __init__(self) -> None:
        self.jobs: JobIndex[TopicPartition] = JobIndex()
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.tracker.assign([TP])
        self.counts = Counts()
        self.failures: list[BaseException] = []
        self.producer = Producer()
        self.responder = Responder(
            "responses",
            "agent-1",
            jobs=self.jobs,
            tracker=self.tracker,
            counts=self.counts,
            fail=lambda error, where: self.failures.append(error),
        )
        self.responder.producer = self.producer  # type: ignore[assignment]
        self.offset = 0

    def job(self, output: Any) -> tuple[Job[TopicPartition], Outcome]:
        ctx = TaskContext.local({}, step=f"s{self.offset}")
        self.tracker.fetched(TP, self.offset)
        _, job = self.jobs.admit(ctx.task, TP, self.offset)
        assert job is not None
        self.offset += 1
        return job, Outcome(output, None, TaskUsage())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_answers_go_as_one_batch_and_are_settled_when_acknowledged() -> None:
    s = Setup()
    sender = asyncio.create_task(s.responder.answers.run())
    for output in ("a", "b", "c"):
        s.responder.answer(*s.job(output))
    await settle()
    assert [len(batch) for batch in s.producer.sent] == [3]
    assert s.tracker.to_commit() == {TP: 0}
    s.producer.acks[0].set_result(None)
    await settle()
    assert s.tracker.to_commit() == {TP: 3}
    assert s.counts.completed == 3
    sender.cancel()


async def test_a_batch_refused_as_too_large_is_answered_one_by_one() -> None:
    s = Setup()
    sender = asyncio.create_task(s.responder.answers.run())
    for output in ("a", BIG, "c"):
        s.responder.answer(*s.job(output))
    await settle()
    answers = [e for batch in s.producer.sent for e in batch]
    assert [len(batch) for batch in s.producer.sent] == [1, 1, 1], "each alone"
    big = answers[1]
    assert isinstance(big, TaskFailed)
    assert big.error_kind == "output_too_large"
    assert not big.retryable
    for future in s.producer.acks:
        future.set_result(None)
    await settle()
    assert s.tracker.to_commit() == {TP: 3}
    assert (s.counts.completed, s.counts.failed) == (2, 1)
    assert not s.failures
    sender.cancel()


async def test_a_batch_the_broker_refuses_as_too_large_is_answered_again_alone() -> None:
    s = Setup()
    sender = asyncio.create_task(s.responder.answers.run())
    for output in ("a", "b"):
        s.responder.answer(*s.job(output))
    await settle()
    s.producer.acks[0].set_exception(RecordTooLargeError())
    await settle()
    assert [len(batch) for batch in s.producer.sent] == [2, 1, 1]
    s.producer.acks[1].set_exception(RecordTooLargeError())  # "a" alone: too large after all
    s.producer.acks[2].set_result(None)
    await settle()
    replaced = s.producer.sent[3][0]
    assert isinstance(replaced, TaskFailed)
    assert replaced.error_kind == "output_too_large"
    s.producer.acks[3].set_result(None)
    await settle()
    assert s.tracker.to_commit() == {TP: 2}
    assert (s.counts.completed, s.counts.failed) == (1, 1)
    assert not s.failures
    sender.cancel()


async def test_an_answer_the_codec_cannot_encode_fails_its_task_alone() -> None:
    s = Setup()
    sender = asyncio.create_task(s.responder.answers.run())
    for output in ("a", UNENCODABLE, "c"):
        s.responder.answer(*s.job(output))
    await settle()
    assert [len(batch) for batch in s.producer.sent] == [1, 1, 1], "each alone"
    bad = s.producer.sent[1][0]
    assert isinstance(bad, TaskFailed)
    assert (bad.error_kind, bad.retryable) == ("invalid_output", False)
    assert "cannot be encoded" in bad.message
    for future in s.producer.acks:
        future.set_result(None)
    await settle()
    assert s.tracker.to_commit() == {TP: 3}
    assert (s.counts.completed, s.counts.failed) == (2, 1)
    assert not s.failures
    assert not sender.done(), "the sender goes on"
    s.responder.answer(*s.job(UNENCODABLE))  # alone from the start
    await settle()
    assert isinstance(s.producer.sent[3][0], TaskFailed)
    sender.cancel()


async def test_any_other_failure_leaves_the_tasks_unsettled_and_stops_the_pool() -> None:
    s = Setup()
    sender = asyncio.create_task(s.responder.answers.run())
    for output in ("a", "b"):
        s.responder.answer(*s.job(output))
    await settle()
    s.producer.acks[0].set_exception(KafkaTimeoutError())
    await settle()
    assert len(s.failures) == 1
    assert isinstance(s.failures[0], KafkaTimeoutError)
    assert s.tracker.to_commit() == {TP: 0}
    assert s.counts.completed == 0
    sender.cancel()
