"""Guarantees of the lock manager that no other test pins down (docs/guarantees.md).

- single writer per lock resource: two lock managers in one group split the
  partitions, and every command is decided by exactly one of them;
- an undecodable or misplaced record on ``agentlog.locks`` goes to the dead-letter
  topic with its coordinates, and the manager (and clients) keep deciding.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import TopicPartition

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.runner import LockManager
from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import DeadLetter, LockGranted, LockReleased
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import DEADLETTER, LOCKS
from tests.integration.locks.locks_harness import LocksTail, poll_until
from tests.support.samples import sample_event


def resources_on_every_partition(partitions: int, per_partition: int) -> list[str]:
    """``per_partition`` resource names living on each partition of the locks topic."""
    found: dict[int, list[str]] = {p: [] for p in range(partitions)}
    n = 0
    while any(len(names) < per_partition for names in found.values()):
        name = f"repo:split-{n}"
        home = found[partition_for(name, partitions)]
        if len(home) < per_partition:
            home.append(name)
        n += 1
    return [name for names in found.values() for name in names]


@pytest.mark.timeout(180)
async def test_two_lock_managers_split_the_partitions_and_each_command_has_one_decider(
    settings: Settings, locks: LockClient, tail: LocksTail
) -> None:
    rounds = 2
    resources = resources_on_every_partition(settings.partitions, per_partition=2)
    async with LockManager(settings) as first, LockManager(settings) as second:
        everything = set(range(settings.partitions))

        def split() -> bool:
            mine, theirs = first.owned_partitions, second.owned_partitions
            return bool(mine and theirs) and not mine & theirs and mine | theirs == everything

        await poll_until(split, 90)  # both joined, the rebalance done, partitions recovered

        async def hold(resource: str) -> None:
            async with locks.lock(resource, ttl=10, wait=30):
                await asyncio.sleep(0.01)

        for _ in range(rounds):
            await asyncio.gather(*(hold(r) for r in resources))
        await tail.until(lambda t: all(len(t.decisions(r)) == 2 * rounds for r in resources), 30)
        assert split(), "the assignment changed while the test ran"
        owners = {r: [m for m in (first, second) if m.state(r) is not None] for r in resources}
    # counted once a batch is committed: read after stop(), which finishes the current one
    decided = first.stats.decided + second.stats.decided

    # every resource's state lives in exactly one manager: the owner of its partition
    assert all(len(found) == 1 for found in owners.values()), owners
    assert {id(found[0]) for found in owners.values()} == {id(first), id(second)}
    # each request and each release was decided once, by one manager: no second grant
    # of a token, no decision twice. The log holds every decision (tail.until above);
    # the counters may miss a batch whose commit met a coordinator change (Kafka, busy
    # machine), never count one twice
    assert decided <= 2 * rounds * len(resources)
    for resource in resources:
        grants = [e for e in tail.decisions(resource) if isinstance(e, LockGranted)]
        releases = [e for e in tail.decisions(resource) if isinstance(e, LockReleased)]
        assert [g.fencing_token for g in grants] == list(range(1, rounds + 1)), resource
        assert [r.fencing_token for r in releases] == list(range(1, rounds + 1)), resource
        assert len({g.request_id for g in grants}) == rounds


@pytest.mark.timeout(120)
async def test_poison_on_the_locks_topic_is_dead_lettered_and_the_manager_keeps_deciding(
    settings: Settings, manager: LockManager, locks: LockClient
) -> None:
    topic = settings.topic(LOCKS.name)
    resource = "repo:after-poison"
    home = manager.home(resource)
    misplaced = sample_event("TaskCompleted")  # a valid event, but not one of this topic's
    poison = {
        "bad_magic": b'{"lock": "not avro"}',
        "truncated": b"\xc3\x01\x00",
        "unexpected_type": AvroCodec.default().encode(misplaced),
    }
    offsets: dict[str, int] = {}
    async with EventProducer(settings) as producer:
        for reason, raw in poison.items():
            # on the resource's own partition, ahead of the request below
            sent = await producer.send_raw(topic, raw, key=reason.encode(), partition=home)
            offsets[reason] = (await sent).offset

    # the manager read past the poison: the request behind it is decided
    async with locks.lock(resource, ttl=5, wait=0) as lease:
        assert lease.token == 1

    letters = await dead_letters(settings, topic, len(poison))
    by_key = {letter.original_key: letter for letter in letters}
    assert set(by_key) == {reason.encode() for reason in poison}
    for reason, raw in poison.items():
        letter = by_key[reason.encode()]
        assert (letter.original_topic, letter.original_partition) == (topic, home)
        assert letter.original_offset == offsets[reason]
        assert letter.raw == raw
        assert letter.error_reason == reason, letter.error
        assert letter.consumer_group == manager.group_id
    manager.raise_failure()  # the loop is alive and well


async def dead_letters(settings: Settings, original_topic: str, want: int) -> list[DeadLetter]:
    """The first ``want`` dead letters of ``original_topic``, read from the start."""
    found: list[DeadLetter] = []
    topic = settings.topic(DEADLETTER.name)
    async with EventConsumer(settings, group_id=None, dead_letters=None) as reader:
        async with EventProducer(settings) as producer:
            partitions = await producer.partitions_for(topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        async with asyncio.timeout(30):
            while len(found) < want:
                found += [
                    d.event
                    for d in await reader.poll(timeout_ms=100)
                    if isinstance(d.event, DeadLetter) and d.event.original_topic == original_topic
                ]
    return found
