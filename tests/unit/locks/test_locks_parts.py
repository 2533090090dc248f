"""Timers, the partition fold, lease arithmetic, the CLI's output and fencing's checks."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

import pytest

from agentlog.agents.locks.cli import add_locks_command, describe, state_json
from agentlog.agents.locks.commands import LockTimer, command_of
from agentlog.agents.locks.errors import FenceError, LockDeniedError, LockTimeoutError
from agentlog.agents.locks.fencing import PostgresFence, fenced_script
from agentlog.agents.locks.inputs import BatchDecider, Outcome
from agentlog.agents.locks.lease import remaining_seconds
from agentlog.agents.locks.partition import PartitionState
from agentlog.agents.locks.state import FINISHED_MAX
from agentlog.agents.locks.timers import EXPIRY, WAIT, TimerHeap, next_timer, pending_timers
from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import Event
from agentlog.streams.consumer import Delivered
from tests.unit.locks.locks_driver import (
    RESOURCE,
    T0,
    Locks,
    interim_release,
    ms,
    release,
    renew,
    request,
    summary,
)


def test_pending_timers_are_the_lease_and_every_wait_earliest_first() -> None:
    locks = Locks()
    locks.send(request("a", ttl_ms=3_000))
    locks.send(request("b", wait_ms=5_000))
    locks.send(request("c", wait_ms=1_000))
    timers = pending_timers(locks.state())
    assert [(t.kind, t.request_id, t.due_at - T0) for t in timers] == [
        (WAIT, "c", timedelta(seconds=1)),
        (EXPIRY, "a", timedelta(seconds=3)),
        (WAIT, "b", timedelta(seconds=5)),
    ]
    assert next_timer(locks.state()) == timers[0]
    assert next_timer(None) is None


def test_timer_ids_are_deterministic_and_distinct_per_item() -> None:
    a = LockTimer(resource=RESOURCE, kind=EXPIRY, request_id="a", due_at=T0)
    same = LockTimer(resource=RESOURCE, kind=EXPIRY, request_id="a", due_at=T0)
    other = LockTimer(resource=RESOURCE, kind=WAIT, request_id="a", due_at=T0)
    assert a.event_id == same.event_id != other.event_id


def test_the_timer_heap_keeps_the_latest_timer_per_resource() -> None:
    heap = TimerHeap()
    first = LockTimer(resource="r1", kind=EXPIRY, request_id="a", due_at=T0 + ms(100))
    later = LockTimer(resource="r1", kind=EXPIRY, request_id="a", due_at=T0 + ms(900))
    other = LockTimer(resource="r2", kind=WAIT, request_id="b", due_at=T0 + ms(500))
    heap.set("r1", first)
    heap.set("r2", other)
    heap.set("r1", later)  # renewed: the old entry is stale
    assert len(heap) == 2
    assert heap.next_due() == T0 + ms(500)
    assert heap.pop_due(T0 + ms(600)) == [other]
    assert heap.pop_due(T0 + ms(600)) == []
    heap.set("r1", None)
    assert heap.next_due() is None
    assert len(heap) == 0


def test_a_partition_folds_only_resources_that_live_on_it() -> None:
    locks = Locks()
    mine, theirs = "res-mine", "res-theirs"
    home = {mine: 0, theirs: 1}
    locks.send(request("a", resource=mine))
    locks.send(request("b", resource=theirs))
    part = PartitionState(0, home.__getitem__)
    for event in locks.log:
        part.fold(event)
    part.recovered()
    assert set(part.resources) == {mine}
    assert part.held == 1
    assert part.waiting == 0
    assert part.events == len(locks.log)
    assert part.timers.next_due() == T0 + ms(1_000)
    assert [t.request_id for t in part.due_timers(T0 + ms(1_000))] == ["a"]


def test_routing_matches_kafkas_default_partitioner() -> None:
    # the same function the orchestrator uses (murmur2, as the Java client)
    assert partition_for("repo:acme/shop", 6) == partition_for(b"repo:acme/shop", 6)
    assert {partition_for(f"r{i}", 6) for i in range(100)} == set(range(6))


def test_the_remaining_lease_subtracts_the_decisions_age_but_never_adds() -> None:
    assert remaining_seconds(T0, T0 + ms(3_000), T0 + ms(500)) == pytest.approx(2.5)
    assert remaining_seconds(T0, T0 + ms(3_000), T0 - ms(500)) == pytest.approx(3.0)
    assert remaining_seconds(T0, T0 + ms(3_000), T0 + ms(9_000)) == 0.0


def test_lock_errors_say_what_to_do() -> None:
    busy = LockDeniedError(RESOURCE, "r1", "busy: held by x")
    assert busy.retriable
    assert "Try again later" in str(busy)
    invalid = LockDeniedError(RESOURCE, "r1", "invalid request: ttl_ms=0")
    assert not invalid.retriable
    timeout = LockTimeoutError(RESOURCE, "r1", 30, "agentlog.locks")
    assert timeout.retriable
    assert "agentlog locks run" in str(timeout)
    assert isinstance(timeout, LockDeniedError)


def test_locks_show_describes_holder_queue_and_last_token() -> None:
    locks = Locks()
    locks.send(request("a", requester="deployer-1"))
    locks.send(request("b", requester="deployer-2"))
    text = describe(RESOURCE, locks.state())
    assert "deployer-1 (request a), token 1" in text
    assert "1. deployer-2 (request b)" in text
    assert "last token  1" in text
    data = state_json(RESOURCE, locks.state())
    assert json.loads(json.dumps(data))["holder"]["fencing_token"] == 1
    assert [w["request_id"] for w in data["queue"]] == ["b"]
    assert describe(RESOURCE, None) == f"{RESOURCE}: never requested"
    assert state_json(RESOURCE, None)["locked"] is False


def test_the_locks_command_registers_run_and_show() -> None:
    parser = argparse.ArgumentParser()
    add_locks_command(parser.add_subparsers())
    args = parser.parse_args(["locks", "show", "repo:x", "--json", "--topic-prefix", "p"])
    assert (args.resource, args.json, args.topic_prefix) == ("repo:x", True, "p")
    args = parser.parse_args(["locks", "run", "--group", "g", "--kafka", "h:1"])
    assert (args.group, args.kafka) == ("g", "h:1")


def test_fence_tables_must_be_plain_identifiers() -> None:
    assert PostgresFence("app.fences").table == '"app"."fences"'
    for bad in ("fences; DROP TABLE x", "a.b.c", "1abc", ""):
        with pytest.raises(FenceError, match="table="):
            PostgresFence(bad)
    assert "fence.token <= EXCLUDED.token" in PostgresFence().claim_sql
    assert "fence.token < EXCLUDED.token" in PostgresFence(strict=True).claim_sql


def test_a_fenced_script_wraps_the_body_after_the_check() -> None:
    lua = fenced_script("return redis.call('SET', KEYS[1], ARGV[1])").lua
    check, write = lua.index("tonumber(current) > token"), lua.index("redis.call('SET', KEYS[1]")
    assert check < write
    assert "tonumber(current) >= token" in fenced_script("return 1", strict=True).lua


def _deliveries(log: list[Event]) -> list[Delivered]:
    return [Delivered("locks", 0, offset, None, 0, (), event) for offset, event in enumerate(log)]


def test_a_partition_reread_from_offset_0_decides_nothing_old_however_long_the_history() -> None:
    """More requests than the core remembers per resource: offsets still tell them decided."""
    locks = Locks()
    for i in range(FINISHED_MAX + 10):
        rid = f"r{i}"
        locks.send(request(rid))
        locks.send(release(rid))
    part = PartitionState(0, lambda _: 0)
    for offset, event in enumerate(locks.log):
        part.fold(event, offset)
    part.recovered()
    last_command = max(i for i, e in enumerate(locks.log) if command_of(e) is not None)
    assert part.decided_through == last_command
    decider = BatchDecider(lambda _: 0, lambda: locks.now)
    outcome = Outcome()
    decider.decide({0: part}, _deliveries(locks.log), outcome)  # lost group offsets: from 0
    assert (outcome.events, outcome.skipped) == (0, 2 * (FINISHED_MAX + 10))
    # the per-resource memory alone would have granted the oldest requests again
    forgetful = PartitionState(0, lambda _: 0, resources=dict(part.resources))
    again = Outcome()
    decider.decide({0: forgetful}, _deliveries(locks.log[:1]), again)
    assert summary(e for g in again.groups[0] for e in g) == [
        f"LockGranted r0 #{FINISHED_MAX + 11}"
    ]


def test_live_decisions_advance_decided_through_and_commands_after_it_are_decided() -> None:
    locks = Locks()
    part = PartitionState(0, lambda _: 0)
    decider = BatchDecider(lambda _: 0, lambda: locks.now)
    log: list[Event] = [request("a"), request("b"), release("zzz")]
    outcome = Outcome()
    decider.decide({0: part}, _deliveries(log), outcome)
    assert summary(e for g in outcome.groups[0] for e in g) == [
        "LockGranted a #1",
        "LockQueued b @1",
    ]
    assert part.decided_through == 1  # the stale release at offset 2 decided nothing
    again = Outcome()
    decider.decide({0: part}, _deliveries(log), again)
    assert (again.events, again.skipped) == (0, 2)


def test_recovery_knows_commands_of_both_encodings_as_decided() -> None:
    """Given a log where an old client's interim release and a new release were decided,
    when the partition is re-read from offset 0, then neither is decided again."""
    locks = Locks()
    locks.send(request("a"))
    locks.send(request("b"))
    locks.send(interim_release("a", 1))  # an older client: LockReleased from its source
    locks.send(release("b", 2))  # a LockReleaseRequested
    assert summary(locks.log[-4:]) == [
        "LockReleased a #1",
        "LockGranted b #2",
        "LockReleaseRequested b #2",
        "LockReleased b #2",
    ]
    part = PartitionState(0, lambda _: 0)
    for offset, event in enumerate(locks.log):
        part.fold(event, offset)
    part.recovered()
    assert part.decided_through == len(locks.log) - 2  # the LockReleaseRequested
    outcome = Outcome()
    BatchDecider(lambda _: 0, lambda: locks.now).decide({0: part}, _deliveries(locks.log), outcome)
    assert (outcome.events, outcome.skipped, outcome.foreign) == (0, 4, 0)


def test_a_command_on_the_wrong_partition_is_forwarded_home_whatever_its_encoding() -> None:
    elsewhere = 1
    part = PartitionState(elsewhere, lambda _: 0)
    commands: list[Event] = [release("a"), renew("a", 1), interim_release("a"), request("b")]
    outcome = Outcome()
    BatchDecider(lambda _: 0, lambda: T0).decide(
        {elsewhere: part},
        [Delivered("locks", elsewhere, o, None, 0, (), e) for o, e in enumerate(commands)],
        outcome,
    )
    assert [(d.event, home) for d, home in outcome.forward] == [(e, 0) for e in commands]
    assert outcome.events == 0
