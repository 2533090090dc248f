"""The orchestrator's offset committer: one commit at a time, later offsets coalesced."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator.offsets import OffsetCommitter, Offsets

A = TopicPartition("responses", 0)
B = TopicPartition("responses", 1)


class Commits:
    """Records each commit call; holds it until released when ``hold`` is set."""

    def __init__(self) -> None:
        self.calls: list[Offsets] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail: Exception | None = None

    async def __call__(self, offsets: Offsets) -> None:
        self.calls.append(dict(offsets))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.hold.wait()
            if self.fail is not None:
                raise self.fail
        finally:
            self.in_flight -= 1


async def test_batches_acknowledged_during_a_commit_go_in_one_next_commit() -> None:
    commits = Commits()
    committer = OffsetCommitter(commits)
    commits.hold.clear()
    committer.add({A: 10})
    await asyncio.sleep(0)  # the first commit is in flight
    committer.add({A: 12})
    committer.add({B: 3})
    committer.add({A: 15})
    assert commits.calls == [{A: 10}]  # the rest waits for the commit in flight
    commits.hold.set()
    await committer.drain()
    assert commits.calls == [{A: 10}, {A: 15, B: 3}]
    assert commits.most_in_flight == 1


async def test_empty_offsets_commit_nothing_and_drain_returns_at_once() -> None:
    commits = Commits()
    committer = OffsetCommitter(commits)
    committer.add({})
    await committer.drain()
    assert commits.calls == []


async def test_a_failed_commit_is_raised_by_the_next_add_and_by_drain() -> None:
    commits = Commits()
    commits.fail = RuntimeError("broker gone")
    committer = OffsetCommitter(commits)
    committer.add({A: 1})
    with pytest.raises(RuntimeError, match="broker gone"):
        await committer.drain()
    with pytest.raises(RuntimeError, match="broker gone"):
        committer.add({A: 2})
    assert commits.calls == [{A: 1}]


async def test_close_drops_what_is_queued() -> None:
    commits = Commits()
    commits.hold.clear()
    committer = OffsetCommitter(commits)
    committer.add({A: 1})
    await asyncio.sleep(0)
    committer.add({A: 2})
    await committer.close()
    await committer.drain()
    assert commits.calls == [{A: 1}]
