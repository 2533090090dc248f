"""Answers + OffsetTracker: an offset becomes committable only once its answer is acknowledged.

The futures stand for the producer's acknowledgements (acks=all); the broker
resolves them in any order and all at once for answers sent together.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError, RecordTooLargeError

from agentlog.agents.runtime.answers import Answers
from agentlog.agents.runtime.offsets import OffsetTracker


class Broker:
    """Acknowledgements as futures the test resolves, in the order it chooses."""

    def __init__(self) -> None:
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.produced: list[int] = []

    async def produce(self, offset: int) -> tuple[int, asyncio.Future[Any]]:
        self.produced.append(offset)
        future = self.acks[offset] = asyncio.get_running_loop().create_future()
        return offset, future


def setup(*offsets: int) -> tuple[OffsetTracker[str], Answers[int], Broker, list[Any]]:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["p"])
    for offset in offsets:
        tracker.fetched("p", offset)
    broker, failures = Broker(), []
    answers: Answers[int] = Answers(
        broker.produce,
        lambda offset: tracker.done("p", offset),
        lambda offset, error: failures.append((offset, error)),
    )
    return tracker, answers, broker, failures


async def settle() -> None:
    for _ in range(3):  # the sender, then the futures' callbacks
        await asyncio.sleep(0)


async def test_an_offset_is_committable_only_once_every_answer_below_is_acknowledged() -> None:
    tracker, answers, broker, _ = setup(0, 1, 2)
    sender = asyncio.create_task(answers.run())
    for offset in (0, 1, 2):
        answers.put(offset)
    await settle()
    assert broker.produced == [0, 1, 2], "produced back to back, none waiting for an ack"
    assert tracker.to_commit() == {"p": 0}, "produced is not acknowledged: nothing to commit"

    broker.acks[2].set_result(None)
    broker.acks[1].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 0}, "never past the unacknowledged answer of 0"
    assert len(answers) == 1

    broker.acks[0].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 3}
    assert await answers.drain(0) == []
    sender.cancel()


async def test_a_failed_answer_is_never_settled_and_drain_reports_the_unacknowledged() -> None:
    tracker, answers, broker, failures = setup(5, 6)
    sender = asyncio.create_task(answers.run())
    answers.put(5)
    answers.put(6)
    await settle()
    broker.acks[5].set_exception(KafkaTimeoutError())
    await settle()
    assert [offset for offset, _ in failures] == [5]
    assert isinstance(failures[0][1], KafkaTimeoutError)
    assert await answers.drain(0.01) == [6], "6 is still waiting for its acknowledgement"
    broker.acks[6].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 5}, "5 failed: its offset stays uncommitted"
    sender.cancel()


async def test_an_answer_put_from_a_failure_callback_is_produced_too() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign(["p"])
    tracker.fetched("p", 0)
    broker = Broker()
    answers: Answers[int] = Answers(
        broker.produce, lambda offset: tracker.done("p", offset), lambda o, _: answers.put(o)
    )
    sender = asyncio.create_task(answers.run())
    answers.put(0)
    await settle()
    broker.acks[0].set_exception(RecordTooLargeError())  # answered again, smaller
    await settle()
    assert broker.produced == [0, 0]
    broker.acks[0].set_result(None)
    await settle()
    assert tracker.to_commit() == {"p": 1}
    sender.cancel()
