"""Answers + OffsetTracker: an offset becomes committable only once its answer is acknowledged.

The futures stand for the producer's acknowledgements (acks=all), one per
batch the sender produced; the broker resolves them in any order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, RecordTooLargeError

from agentlog.agents.runtime.answers import Answers
from agentlog.agents.runtime.offsets import OffsetTracker


class Broker:
    """Acknowledgements as futures the test resolves, one per batch, in the order it chooses."""

    def __init__(self) -> None:
        self.acks: dict[int, asyncio.Future[Any]] = {}  # by each offset of the batch
        self.batches: list[list[int]] = []

    async def produce(self, batch: list[int]) -> asyncio.Future[Any]:
        self.batches.append(list(batch))
        future = asyncio.get_running_loop().create_future()
        for offset in batch:
            self.acks[offset] = future
        return future

    @property
    def produced(self) -> list[int]:
        return [offset for batch in self.batches for offset in batch]


def setup(
    *offsets: int, max_batch: int = 500
) -> tuple[OffsetTracker[str], Answers[int], Broker, list[Any]]:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["p"])
    for offset in offsets:
        tracker.fetched("p", offset)
    broker, failures = Broker(), []
    answers: Answers[int] = Answers(
        broker.produce,
        lambda offset: tracker.done("p", offset),
        lambda batch, error: failures.append((batch, error)),
        max_batch=max_batch,
    )
    return tracker, answers, broker, failures


async def settle() -> None:
    for _ in range(3):  # the sender, then the futures' callbacks
        await asyncio.sleep(0)


async def test_an_offset_is_committable_only_once_every_answer_below_is_acknowledged() -> None:
    tracker, answers, broker, _ = setup(0, 1, 2)
    sender = asyncio.create_task(answers.run())
    answers.put(0)
    await settle()
    answers.put(1)
    answers.put(2)
    await settle()
    assert broker.batches == [[0], [1, 2]], "produced as they came, none waiting for an ack"
    assert tracker.to_commit() == {"p": 0}, "produced is not acknowledged: nothing to commit"
    assert len(answers) == 3

    broker.acks[2].set_result(None)  # the batch of 1 and 2
    await settle()
    assert tracker.to_commit() == {"p": 0}, "never past the unacknowledged answer of 0"
    assert len(answers) == 1

    broker.acks[0].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 3}
    assert await answers.drain(0) == []
    sender.cancel()


async def test_answers_queued_together_are_produced_as_one_batch_within_the_limit() -> None:
    tracker, answers, broker, _ = setup(*range(5), max_batch=2)
    for offset in range(5):
        answers.put(offset)
    sender = asyncio.create_task(answers.run())
    await settle()
    assert broker.batches == [[0, 1], [2, 3], [4]]
    for future in {id(f): f for f in broker.acks.values()}.values():
        future.set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 5}
    assert len(answers) == 0
    sender.cancel()


async def test_a_failed_answer_is_never_settled_and_drain_reports_the_unacknowledged() -> None:
    tracker, answers, broker, failures = setup(5, 6)
    sender = asyncio.create_task(answers.run())
    answers.put(5)
    await settle()
    answers.put(6)
    await settle()
    broker.acks[5].set_exception(KafkaTimeoutError())
    await settle()
    assert [batch for batch, _ in failures] == [[5]]
    assert isinstance(failures[0][1], KafkaTimeoutError)
    assert await answers.drain(0.01) == [6], "6 is still waiting for its acknowledgement"
    broker.acks[6].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 5}, "5 failed: its offset stays uncommitted"
    sender.cancel()


async def test_answers_put_alone_from_a_failure_callback_are_produced_one_by_one() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["p"])
    tracker.fetched("p", 0)
    tracker.fetched("p", 1)
    broker = Broker()

    def failed(batch: list[int], _: BaseException) -> None:
        for offset in batch:
            answers.put_alone(offset)

    answers: Answers[int] = Answers(broker.produce, lambda o: tracker.done("p", o), failed)
    sender = asyncio.create_task(answers.run())
    answers.put(0)
    answers.put(1)
    await settle()
    broker.acks[0].set_exception(RecordTooLargeError())  # answered again, each alone
    await settle()
    assert broker.batches == [[0, 1], [0], [1]]
    broker.acks[0].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 1}
    assert await answers.drain(0) == [1]
    broker.acks[1].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 2}
    sender.cancel()
