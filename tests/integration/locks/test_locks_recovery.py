"""SIGKILL of the lock-manager process mid-run: a new one decides every waiter, in order."""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

import pytest

from agentlog.agents.locks.client import LockClient
from agentlog.agents.locks.errors import LockDeniedError
from agentlog.schemas.events import LockDenied, LockGranted, LockReleased, LockRequested
from agentlog.settings import Settings
from tests.integration.locks.locks_harness import LocksTail, reap, start_manager

HOLD_S = 0.5


@pytest.mark.timeout(300)
async def test_sigkill_mid_run_then_every_waiter_is_granted_or_denied_in_order(
    settings: Settings, tail: LocksTail, tmp_path: Path
) -> None:
    resource = "repo:acme/sigkill"
    log = tmp_path / "locks.log"
    first = start_manager(settings, log)
    second = None
    holding: list[int] = []
    overlaps = 0
    tokens: dict[str, int] = {}
    denied: dict[str, str] = {}

    async def requester(client: LockClient, name: str, wait: float) -> None:
        nonlocal overlaps
        try:
            async with client.lock(resource, ttl=60, wait=wait) as lease:
                holding.append(lease.token)
                overlaps += len(holding) > 1
                await asyncio.sleep(HOLD_S)
                holding.remove(lease.token)
                tokens[name] = lease.token
        except LockDeniedError as e:
            denied[name] = e.reason

    def requests_sent(t: LocksTail) -> int:
        return sum(isinstance(e, LockRequested) for e in t.events)

    try:
        async with LockClient(settings, requester="sigkill", decision_timeout=200) as client:
            tasks = []
            # one request at a time, so the log order of the requests is known
            for i in range(8):
                # requester 5 gives up after 3 s: the outage outlasts that, so it is denied
                wait = 3.0 if i == 5 else 200.0
                tasks.append(asyncio.create_task(requester(client, f"r{i}", wait)))
                await tail.until(lambda t, n=i + 1: requests_sent(t) == n, 30)
            await tail.until(lambda t: len(t.grants(resource)) >= 3, 90)
            first.send_signal(signal.SIGKILL)
            assert await reap(first) == -signal.SIGKILL
            killed_with = len(tail.grants(resource))
            # more requests (and the holder's release) arrive while no manager runs
            for i in range(8, 10):
                tasks.append(asyncio.create_task(requester(client, f"r{i}", 200.0)))
                await tail.until(lambda t, n=i + 1: requests_sent(t) == n, 30)
            second = start_manager(settings, log)
            async with asyncio.timeout(200):
                await asyncio.gather(*tasks)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                await reap(process)

    assert killed_with < 7, "the manager was killed too late to test anything"
    requests = [e for e in tail.events if isinstance(e, LockRequested)]
    await tail.until(
        lambda t: sum(isinstance(e, LockReleased) for e in t.decisions(resource)) == 9, 30
    )
    decisions = tail.decisions(resource)
    grants = [e for e in decisions if isinstance(e, LockGranted)]
    # no grant lost or duplicated: one grant record per request that was not denied
    per_request = collections.Counter(g.request_id for g in grants)
    assert all(n == 1 for n in per_request.values()), per_request
    denied_ids = {e.request_id for e in decisions if isinstance(e, LockDenied)}
    assert len(denied_ids) == 1
    assert list(denied) == ["r5"]
    assert denied["r5"].startswith("wait timeout")
    assert set(per_request) | denied_ids == {r.request_id for r in requests}
    # in order: FIFO by request, tokens 1, 2, 3, ... in grant order
    assert [g.request_id for g in grants] == [
        r.request_id for r in requests if r.request_id not in denied_ids
    ]
    assert [g.fencing_token for g in grants] == list(range(1, len(grants) + 1))
    assert sorted(tokens.values()) == list(range(1, 10))
    # every lease released exactly once, never two holders
    released = collections.Counter(
        e.fencing_token for e in decisions if isinstance(e, LockReleased)
    )
    assert released == collections.Counter(range(1, 10))
    assert overlaps == 0
    assert "recovered partitions" in log.read_text()
