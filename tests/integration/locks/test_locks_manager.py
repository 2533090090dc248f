"""The lock manager and the SDK on a real broker: grant, queue, hand-over, deny, expire, renew."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.errors import (
    InvalidLockRequestError,
    LockDeniedError,
    LockLostError,
    LockManagerError,
)
from agentlog.agents.locks.lease import Lease
from agentlog.agents.locks.runner import LockManager, LockManagerConfig
from agentlog.schemas.events import (
    LockDenied,
    LockExpired,
    LockGranted,
    LockReleased,
    LockRequested,
    new_envelope,
)
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from tests.integration.locks.locks_harness import LocksTail

pytestmark = pytest.mark.timeout(120)


async def test_grant_queue_and_hand_over_on_release(
    manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "repo:acme/shop"
    order: list[str] = []
    first = await locks.acquire(resource, ttl=10, wait=10)
    assert first.token == 1
    assert first.held
    assert await locks.is_locked(resource)
    holder = await locks.holder(resource)
    assert holder is not None
    assert (holder.request_id, holder.token) == (first.request_id, 1)

    async def second() -> int:
        async with locks.lock(resource, ttl=10, wait=10) as lease:
            order.append("second holds")
            return lease.token

    waiting = asyncio.create_task(second())
    await tail.until(lambda t: any(type(e).__name__ == "LockQueued" for e in t.events), 20)
    assert not waiting.done()
    order.append("first releases")
    await first.release()
    assert await asyncio.wait_for(waiting, 20) == 2
    assert order == ["first releases", "second holds"]
    state = await locks.state(resource)
    assert state is not None
    assert state.holder is None
    assert state.last_token == 2
    await tail.until(lambda t: len(t.decisions(resource)) >= 5, 20)
    kinds = [type(e).__name__ for e in tail.decisions(resource)]
    assert kinds == [
        "LockGranted",
        "LockQueued",
        "LockReleased",
        "LockGranted",
        "LockReleased",
    ]
    # the counter moves once the batch's decisions are appended, copied and committed;
    # the tail can read the last decision before that (seen once on Kafka)
    async with asyncio.timeout(10):
        while manager.stats.decisions < 5:  # noqa: ASYNC110 - polls the manager's own counter
            await asyncio.sleep(0.02)
    assert manager.stats.decisions == 5


async def test_busy_without_waiting_and_wait_timeouts_are_denied(
    manager: LockManager, locks: LockClient
) -> None:
    resource = "db:orders"
    async with locks.lock(resource, ttl=10, wait=0) as lease:
        with pytest.raises(LockDeniedError, match="busy: held by test") as busy:
            await locks.acquire(resource, ttl=10, wait=0)
        assert busy.value.retriable
        with pytest.raises(LockDeniedError, match="wait timeout"):
            await locks.acquire(resource, ttl=10, wait=0.5)
        assert lease.held
    with pytest.raises(InvalidLockRequestError, match="ttl="):
        await locks.acquire(resource, ttl=0)


async def test_an_unrenewed_lease_expires_and_the_next_waiter_gets_it(
    manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "cache:warmup"
    followers: list[Lease] = []

    async def hold_without_renewing() -> None:
        async with locks.lock(resource, ttl=1.0, renew=False) as lease:
            nxt = asyncio.create_task(locks.acquire(resource, ttl=5, wait=10))
            await asyncio.wait_for(lease.lost.wait(), 10)
            followers.append(await asyncio.wait_for(nxt, 10))

    with pytest.raises(LockLostError, match="ran out") as lost:
        await hold_without_renewing()
    [follower] = followers
    assert follower.token == 2
    assert lost.value.token == 1
    await follower.release()
    await tail.until(lambda t: any(isinstance(e, LockExpired) for e in t.decisions(resource)), 20)
    expired = [e for e in tail.decisions(resource) if isinstance(e, LockExpired)]
    assert [e.fencing_token for e in expired] == [1]


async def test_renewals_keep_a_lease_past_its_ttl(
    manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "repo:long-job"
    async with locks.lock(resource, ttl=1.0) as lease:
        await asyncio.sleep(3.0)
        assert lease.held
        assert not lease.lost.is_set()
        first_expiry = lease.expires_at
        await lease.renew(2.0)
        assert lease.expires_at > first_expiry
    await tail.until(lambda t: any(isinstance(e, LockReleased) for e in t.decisions(resource)), 20)
    renewals = [e for e in tail.decisions(resource) if type(e).__name__ == "LockRenewed"]
    assert len(renewals) >= 4  # ~every 0.33 s plus the manual one
    assert not [e for e in tail.decisions(resource) if isinstance(e, LockExpired)]


async def test_cancelling_a_wait_withdraws_the_request(
    manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "queue:withdraw"
    lease = await locks.acquire(resource, ttl=10)
    waiter = asyncio.create_task(locks.acquire(resource, ttl=10, wait=30))
    await tail.until(lambda t: any(type(e).__name__ == "LockQueued" for e in t.events), 20)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    await tail.until(lambda t: any(isinstance(e, LockDenied) for e in t.events), 20)
    [denied] = [e for e in tail.decisions(resource) if isinstance(e, LockDenied)]
    assert denied.reason.startswith("cancelled")
    await lease.release()
    state = await locks.state(resource)
    assert state is not None
    assert state.holder is None
    assert state.queue == ()


async def test_a_crash_between_the_append_and_the_commit_decides_nothing_twice(
    settings: Settings, locks: LockClient, tail: LocksTail, monkeypatch: Any
) -> None:
    """The decisions reach the log, the offsets are never committed: the next owner re-reads
    the requests and finds them decided; the requester has its grant either way."""
    resource = "repo:crash-after-append"
    first = LockManager(settings)

    async def crash(moved: dict[Any, int]) -> None:
        if moved:
            raise RuntimeError("crashed after the append, before the commit")

    leases: list[Lease] = []

    async def run_until_the_crash() -> None:
        async with first:
            async with asyncio.timeout(60):
                await first.wait_ready()
            monkeypatch.setattr(first, "_commit", crash)
            leases.append(await locks.acquire(resource, ttl=30, wait=5))  # grant appended
            await first.wait()

    with pytest.raises(LockManagerError, match="crashed after the append"):
        await run_until_the_crash()
    [lease] = leases
    # the first member left the group; the second re-reads the uncommitted request
    async with LockManager(settings) as second:
        async with asyncio.timeout(60):
            await second.wait_ready()
        follower = asyncio.create_task(locks.acquire(resource, ttl=30, wait=30))
        await tail.until(lambda t: any(type(e).__name__ == "LockQueued" for e in t.events), 20)
        await lease.release()
        follower_lease = await asyncio.wait_for(follower, 20)
        assert follower_lease.token == 2
        await follower_lease.release()
        assert second.stats.recoveries >= 1
    # the test's own tail may lag behind the clients' confirmations
    await tail.until(
        lambda t: sum(isinstance(e, LockReleased) for e in t.decisions(resource)) >= 2, 20
    )
    grants = [e for e in tail.decisions(resource) if isinstance(e, LockGranted)]
    assert [(g.request_id, g.fencing_token) for g in grants] == [
        (lease.request_id, 1),
        (grants[1].request_id, 2),
    ]
    released = [e for e in tail.decisions(resource) if isinstance(e, LockReleased)]
    assert [e.fencing_token for e in released] == [1, 2]


async def test_a_request_on_the_wrong_partition_is_forwarded_and_decided_at_home(
    manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "repo:misrouted"
    home = locks.home(resource)
    wrong = (home + 1) % manager.settings.partitions
    request = LockRequested(
        envelope=new_envelope("LockRequested", resource, source="librdkafka-app"),
        resource=resource,
        request_id="misrouted-1",
        requester="elsewhere",
        ttl_ms=5_000,
        wait_timeout_ms=0,
    )
    async with EventProducer(manager.settings) as producer:
        topic = manager.settings.topic("locks")
        await (
            await producer.send_raw(
                topic, producer.codec.encode(request), key=resource.encode(), partition=wrong
            )
        )
    await tail.until(lambda t: bool(t.of("misrouted-1")), 20)
    placed = {
        (p, type(e).__name__)
        for p, _, e in tail.records
        if getattr(e, "request_id", None) == "misrouted-1"
    }
    assert placed == {(wrong, "LockRequested"), (home, "LockRequested"), (home, "LockGranted")}
    assert manager.stats.forwarded == 1


async def test_a_new_group_rereading_the_whole_history_decides_nothing_old(
    settings: Settings, manager: LockManager, locks: LockClient, tail: LocksTail
) -> None:
    resource = "repo:history"
    for _ in range(3):
        async with locks.lock(resource, ttl=5):
            pass
    await tail.until(lambda t: len(t.decisions(resource)) == 6, 20)
    await manager.stop()
    # committed offsets lost (a new group): everything is read again from offset 0
    config = LockManagerConfig(group_id=f"{settings.topic_prefix}.other-group")
    async with LockManager(settings, config=config) as other:
        async with asyncio.timeout(60):
            await other.wait_ready()
        async with locks.lock(resource, ttl=5) as lease:
            assert lease.token == 4
        assert other.stats.skipped >= 6  # 3 requests and 3 releases, all decided before
    await tail.until(lambda t: len(t.decisions(resource)) >= 8, 20)
    assert [(type(e).__name__, e.fencing_token) for e in tail.decisions(resource)[6:]] == [
        ("LockGranted", 4),
        ("LockReleased", 4),
    ]
