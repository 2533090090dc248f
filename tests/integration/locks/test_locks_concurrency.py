"""20 concurrent requesters on one resource: strictly increasing tokens, never two holders."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.runner import LockManager
from agentlog.schemas.events import LockGranted, LockReleased
from agentlog.settings import Settings
from tests.integration.locks.locks_harness import LocksTail


@pytest.mark.timeout(180)
async def test_twenty_concurrent_requesters_get_increasing_tokens_and_never_overlap(
    settings: Settings, manager: LockManager, tail: LocksTail
) -> None:
    resource = "repo:acme/contended"
    inside: list[int] = []
    overlaps = 0
    #: token -> (monotonic time granted to the holder, time it left the block)
    held: dict[int, tuple[float, float]] = {}

    async def requester(client: LockClient) -> int:
        nonlocal overlaps
        async with client.lock(resource, ttl=10, wait=120) as lease:
            entered = time.monotonic()
            inside.append(lease.token)
            overlaps += len(inside) > 1
            await asyncio.sleep(0.02)
            inside.remove(lease.token)
            held[lease.token] = (entered, time.monotonic())
            return lease.token

    # four processes' worth of clients, five requesters each, all at once
    clients = [LockClient(settings, requester=f"client-{i}") for i in range(4)]
    for client in clients:
        await client.start()
    try:
        tokens = await asyncio.gather(*(requester(clients[i % 4]) for i in range(20)))
    finally:
        for client in clients:
            await client.stop()
    assert overlaps == 0
    assert sorted(tokens) == list(range(1, 21))
    await tail.until(
        lambda t: sum(isinstance(e, LockReleased) for e in t.decisions(resource)) == 20, 30
    )
    decisions = tail.decisions(resource)
    grants = [e for e in decisions if isinstance(e, LockGranted)]
    assert [g.fencing_token for g in grants] == list(range(1, 21))  # in grant (log) order
    # each grant comes after the previous lease's release, in the log and in time
    order = [
        (type(e).__name__, e.fencing_token)
        for e in decisions
        if isinstance(e, LockGranted | LockReleased)
    ]
    assert order == [(kind, t) for t in range(1, 21) for kind in ("LockGranted", "LockReleased")]
    spans = [held[t] for t in range(1, 21)]
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))
    assert all(
        a.envelope.occurred_at <= b.envelope.occurred_at for a, b in itertools.pairwise(grants)
    )
