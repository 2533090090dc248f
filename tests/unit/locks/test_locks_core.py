"""The lock core, rule by rule: given a log, when an input arrives, then these decisions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from agentlog.agents.locks.commands import (
    LockTimer,
    ReleaseRequest,
    RenewRequest,
    command_of,
    is_decision,
    release_event,
    renew_event,
)
from agentlog.agents.locks.decide import decide, handle
from agentlog.agents.locks.evolve import evolve, fold
from agentlog.agents.locks.state import FALLBACK_TTL_MS, MANAGER_SOURCE, MAX_TTL_MS, LockState
from agentlog.schemas.events import (
    LockDenied,
    LockGranted,
    LockQueued,
    LockReleased,
    LockReleaseRequested,
    LockRenewed,
    LockRenewRequested,
    derive_event_id,
    new_envelope,
)
from tests.unit.locks.locks_driver import (
    RESOURCE,
    T0,
    Locks,
    Wire,
    as_input,
    fold_log,
    interim_release,
    interim_renew,
    ms,
    release,
    renew,
    request,
    summary,
)


@dataclass(frozen=True)
class Encoding:
    """How a client writes release and renew commands on the topic."""

    release: Callable[..., Wire]
    renew: Callable[..., Wire]


#: ``command``: the command events (``LockReleaseRequested``, ``LockRenewRequested``);
#: ``interim``: the deprecated ``LockReleased`` / ``LockRenewed`` from a client source.
ENCODINGS = {
    "command": Encoding(release, renew),
    "interim": Encoding(interim_release, interim_renew),
}


@pytest.fixture(params=sorted(ENCODINGS))
def wire(request: pytest.FixtureRequest) -> Encoding:
    """Each release/renew rule holds in both encodings (older clients keep working)."""
    return ENCODINGS[request.param]


def held_by_a() -> Locks:
    """Given: ``a`` holds the lock (token 1, lease 1 s)."""
    locks = Locks()
    assert summary(locks.send(request("a"))) == ["LockGranted a #1"]
    return locks


# -- requests ---------------------------------------------------------------------------


def test_a_free_lock_is_granted_with_token_1_and_a_lease_of_ttl() -> None:
    locks = Locks()
    [granted] = locks.send(request("a", ttl_ms=1_500))
    assert isinstance(granted, LockGranted)
    assert (granted.fencing_token, granted.requester) == (1, "agent-a")
    assert granted.lease_expires_at == T0 + ms(1_500)
    assert granted.envelope.source == MANAGER_SOURCE
    assert locks.state().holder is not None
    assert locks.state().holder.request_id == "a"


def test_a_held_lock_queues_requests_in_arrival_order() -> None:
    locks = held_by_a()
    assert summary(locks.send(request("b"))) == ["LockQueued b @1"]
    assert summary(locks.send(request("c"))) == ["LockQueued c @2"]
    assert [w.request_id for w in locks.state().queue] == ["b", "c"]
    assert locks.state().queue[0].deadline == T0 + ms(5_000)


def test_a_request_that_does_not_wait_is_denied_when_held() -> None:
    locks = held_by_a()
    [denied] = locks.send(request("b", wait_ms=0))
    assert isinstance(denied, LockDenied)
    assert denied.reason.startswith("busy: held by agent-a (token 1)")
    assert locks.state().queue == ()


def test_a_request_that_does_not_wait_is_granted_when_free() -> None:
    assert summary(Locks().send(request("a", wait_ms=0))) == ["LockGranted a #1"]


def test_a_duplicate_request_id_decides_nothing_whatever_the_state() -> None:
    locks = held_by_a()
    locks.send(request("b"))
    assert locks.send(request("a")) == []  # the holder
    assert locks.send(request("b")) == []  # queued
    locks.send(release("a"))
    assert locks.send(request("a")) == []  # ended
    assert [w.request_id for w in locks.state().queue] == []


def test_a_redelivered_input_decides_nothing() -> None:
    locks = held_by_a()
    queued = request("b")
    locks.send(queued)
    command = release("a", 1)
    assert summary(locks.send(command)) == ["LockReleased a #1", "LockGranted b #2"]
    assert locks.send(queued) == []
    assert locks.send(command) == []


def test_invalid_requests_are_denied_with_the_problem() -> None:
    locks = Locks()
    cases = {
        "ttl0": request("ttl0", ttl_ms=0),
        "ttl-huge": request("ttl-huge", ttl_ms=MAX_TTL_MS + 1),
        "wait-neg": request("wait-neg", wait_ms=-1),
        "": request(""),
    }
    for rid, item in cases.items():
        [denied] = locks.send(item)
        assert isinstance(denied, LockDenied)
        assert denied.request_id == rid
        assert denied.reason.startswith("invalid request: ")
    assert locks.state().holder is None
    assert locks.state().last_token == 0


def test_decisions_have_ids_derived_from_the_input_and_carry_the_requests_correlation() -> None:
    locks = held_by_a()
    b = request("b")
    locks.send(b)
    command = release("a", 1)
    released, granted = locks.send(command)
    assert released.envelope.event_id == derive_event_id(command.envelope.event_id, 0)
    assert granted.envelope.event_id == derive_event_id(command.envelope.event_id, 1)
    assert granted.envelope.causation_id == command.envelope.event_id
    assert granted.envelope.correlation_id == b.envelope.correlation_id
    assert granted.envelope.occurred_at == locks.now


def test_the_same_input_on_the_same_state_gives_the_same_events_ids_included() -> None:
    locks = held_by_a()
    b = request("b")
    state = locks.state()
    assert decide(state, b, T0) == decide(state, b, T0)
    # a state folded from the log that already holds the (undecided) request decides the same
    undecided = evolve(state, b)
    assert decide(undecided, b, T0) == decide(state, b, T0)


# -- releases (both encodings) -----------------------------------------------------------


def test_a_release_by_the_holder_hands_over_to_the_next_waiter_with_the_next_token(
    wire: Encoding,
) -> None:
    locks = held_by_a()
    locks.send(request("b", ttl_ms=2_000))
    locks.send(request("c"))
    locks.now += ms(300)
    released, granted = locks.send(wire.release("a", 1))
    assert isinstance(released, LockReleased)
    assert released.fencing_token == 1
    assert released.envelope.source == MANAGER_SOURCE
    assert isinstance(granted, LockGranted)
    assert (granted.request_id, granted.fencing_token) == ("b", 2)
    assert granted.lease_expires_at == locks.now + ms(2_000)
    assert [w.request_id for w in locks.state().queue] == ["c"]


def test_a_release_with_token_0_releases_whatever_the_request_was_granted(
    wire: Encoding,
) -> None:
    locks = held_by_a()
    assert summary(locks.send(wire.release("a"))) == ["LockReleased a #1"]
    assert locks.state().holder is None


def test_a_release_from_a_stale_holder_decides_nothing(wire: Encoding) -> None:
    locks = held_by_a()
    locks.send(request("b"))
    locks.send(wire.release("a", 1))  # b holds token 2
    assert locks.send(wire.release("a", 1)) == []  # a again, a new command
    assert locks.send(wire.release("b", 1)) == []  # b with a wrong token
    assert locks.send(wire.release("nobody")) == []
    assert locks.state().holder is not None
    assert locks.state().holder.token == 2


def test_a_waiter_that_withdraws_is_denied_as_cancelled_and_leaves_the_queue(
    wire: Encoding,
) -> None:
    locks = held_by_a()
    locks.send(request("b"))
    locks.send(request("c"))
    [denied] = locks.send(wire.release("b"))
    assert isinstance(denied, LockDenied)
    assert denied.reason.startswith("cancelled")
    assert [w.request_id for w in locks.state().queue] == ["c"]
    assert summary(locks.send(wire.release("a", 1))) == ["LockReleased a #1", "LockGranted c #2"]


def test_a_release_after_the_lease_ran_out_is_an_expiry_not_a_release(wire: Encoding) -> None:
    locks = held_by_a()
    locks.send(request("b"))
    locks.now += ms(1_000)  # a's lease ends now; no timer has fired yet
    assert summary(locks.send(wire.release("a", 1))) == ["LockExpired a #1", "LockGranted b #2"]


# -- renewals (both encodings) -----------------------------------------------------------


def test_a_renewal_extends_the_lease_from_the_managers_now(wire: Encoding) -> None:
    locks = held_by_a()
    locks.now += ms(600)
    [renewed] = locks.send(wire.renew("a", 1, ttl_ms=2_000))
    assert isinstance(renewed, LockRenewed)
    assert renewed.lease_expires_at == locks.now + ms(2_000) == T0 + ms(2_600)
    assert renewed.fencing_token == 1
    assert renewed.envelope.source == MANAGER_SOURCE
    assert locks.state().holder is not None
    assert locks.state().holder.expires_at == T0 + ms(2_600)
    assert locks.tick(1_500) == []  # still held at T0 + 2.1 s
    assert summary(locks.tick(500)) == ["LockExpired a #1"]


def test_renewals_from_non_holders_or_with_a_stale_token_decide_nothing(wire: Encoding) -> None:
    locks = held_by_a()
    locks.send(request("b"))
    assert locks.send(wire.renew("b")) == []  # a waiter
    assert locks.send(wire.renew("a", 7)) == []  # wrong token
    assert locks.send(wire.renew("a", 1, ttl_ms=0)) == []  # nonsense length
    locks.send(wire.release("a", 1))  # b holds token 2 now
    assert locks.send(wire.renew("a", 1)) == []  # the old lease's holder
    holder = locks.state().holder
    assert holder is not None
    assert (holder.request_id, holder.token, holder.expires_at) == ("b", 2, T0 + ms(1_000))


def test_the_renewal_of_a_lease_that_ran_out_is_refused_it_expires(wire: Encoding) -> None:
    locks = held_by_a()
    locks.send(request("b"))
    locks.now += ms(1_000)  # a's lease ends now; the renewal comes too late
    assert summary(locks.send(wire.renew("a", 1))) == ["LockExpired a #1", "LockGranted b #2"]
    holder = locks.state().holder
    assert holder is not None
    assert holder.request_id == "b"


def test_a_duplicate_command_decides_nothing(wire: Encoding) -> None:
    locks = held_by_a()
    renewal = wire.renew("a", 1)
    assert summary(locks.send(renewal)) == ["LockRenewed a #1"]
    assert locks.send(renewal) == []  # redelivered: same event id
    command = wire.release("a", 1)
    assert summary(locks.send(command)) == ["LockReleased a #1"]
    assert locks.send(command) == []


# -- the two encodings -------------------------------------------------------------------


def test_the_renew_command_carries_its_length_as_a_duration() -> None:
    wire = renew("a", 1, ttl_ms=4_321)
    assert isinstance(wire, LockRenewRequested)
    command = command_of(wire)
    assert isinstance(command, RenewRequest)
    assert (command.ttl_ms, command.fencing_token) == (4_321, 1)
    assert command.envelope == wire.envelope


def test_the_interim_renew_encodes_its_length_as_expiry_minus_occurred_at() -> None:
    wire = interim_renew("a", 1, ttl_ms=4_321)
    command = command_of(wire)
    assert isinstance(command, RenewRequest)
    assert (command.ttl_ms, command.fencing_token) == (4_321, 1)
    assert command.envelope == wire.envelope


def test_a_release_command_is_a_LockReleaseRequested_and_never_a_decision() -> None:
    wire = release_event(RESOURCE, "a", 3, source="lock-client", reason="done")
    assert isinstance(wire, LockReleaseRequested)
    assert (wire.envelope.type, wire.reason) == ("LockReleaseRequested", "done")
    command = command_of(wire)
    assert isinstance(command, ReleaseRequest)
    assert (command.request_id, command.fencing_token) == ("a", 3)
    assert command.envelope == wire.envelope
    assert not is_decision(wire)


def test_the_interim_release_is_a_LockReleased_from_a_client_source() -> None:
    wire = interim_release("a", 3, source="lock-client")
    command = command_of(wire)
    assert isinstance(command, ReleaseRequest)
    assert command.fencing_token == 3
    assert not is_decision(wire)
    # the same record from the lock manager is a decision, not a command
    decision = replace(wire, envelope=replace(wire.envelope, source=MANAGER_SOURCE))
    assert is_decision(decision)
    assert command_of(decision) is None


def test_commands_cannot_be_built_with_the_lock_managers_source() -> None:
    with pytest.raises(ValueError, match="lock-manager"):
        release_event(RESOURCE, "a", source=MANAGER_SOURCE)
    with pytest.raises(ValueError, match="lock-manager"):
        renew_event(RESOURCE, "a", 1, 1_000, source=MANAGER_SOURCE)


def test_old_and_new_clients_on_one_resource_are_decided_alike() -> None:
    """Given a log mixing both encodings, the decisions are those of either alone."""

    def run(releases: Encoding, renewals: Encoding) -> list[str]:
        locks = held_by_a()
        out = summary(locks.send(request("b")))
        out += summary(locks.send(renewals.renew("a", 1, ttl_ms=3_000)))
        out += summary(locks.send(releases.release("a", 1)))
        out += summary(locks.send(request("c")))
        out += summary(locks.send(releases.release("c")))  # withdrawn
        locks.restart()  # the fold of a mixed log is the live state
        out += summary(locks.send(renewals.renew("b", 2)))
        return out

    command, interim = ENCODINGS["command"], ENCODINGS["interim"]
    expected = run(command, command)
    assert expected == [
        "LockQueued b @1",
        "LockRenewed a #1",
        "LockReleased a #1",
        "LockGranted b #2",
        "LockQueued c @1",
        "LockDenied c",
        "LockRenewed b #2",
    ]
    assert run(interim, interim) == run(command, interim) == run(interim, command) == expected


# -- timers -----------------------------------------------------------------------------


def test_an_expired_lease_goes_to_the_next_waiter() -> None:
    locks = held_by_a()
    locks.send(request("b"))
    assert locks.tick(999) == []
    assert summary(locks.tick(1)) == ["LockExpired a #1", "LockGranted b #2"]
    holder = locks.state().holder
    assert holder is not None
    assert holder.expires_at == T0 + ms(2_000)


def test_a_waiter_is_denied_at_its_wait_deadline_and_the_queue_keeps_its_order() -> None:
    locks = Locks()
    locks.send(request("a", ttl_ms=10_000))
    locks.send(request("b", wait_ms=3_000))
    locks.send(request("c", wait_ms=1_000))
    locks.send(request("d", wait_ms=9_000))
    [denied] = locks.tick(1_000)
    assert isinstance(denied, LockDenied)
    assert denied.request_id == "c"
    assert denied.reason.startswith("wait timeout")
    assert [w.request_id for w in locks.state().queue] == ["b", "d"]
    assert summary(locks.tick(2_000)) == ["LockDenied b"]


def test_late_timers_apply_in_due_order_a_wait_ending_before_the_expiry_is_denied() -> None:
    locks = Locks()
    locks.send(request("a", ttl_ms=2_000))
    locks.send(request("b", wait_ms=1_000))  # gives up at +1 s, before a's lease ends
    locks.send(request("c", wait_ms=3_000))  # still waiting when a's lease ends at +2 s
    # the manager was busy: nothing fired until +5 s
    assert summary(locks.tick(5_000)) == ["LockDenied b", "LockExpired a #1", "LockGranted c #2"]


def test_a_due_timer_is_applied_before_any_input() -> None:
    locks = held_by_a()
    locks.now += ms(1_000)
    # a new request arrives at the moment a's lease ends: a expires first, b gets it
    assert summary(locks.send(request("b"))) == ["LockExpired a #1", "LockGranted b #2"]


def test_a_timer_that_is_not_due_or_no_longer_pending_decides_nothing() -> None:
    locks = held_by_a()
    timer = LockTimer(resource=RESOURCE, kind="expiry", request_id="a", due_at=T0 + ms(1_000))
    assert handle(locks.state(), timer, T0 + ms(500)).events == ()
    assert handle(None, timer, T0 + ms(5_000)).events == ()


# -- tokens, restarts and the fold --------------------------------------------------------


def test_tokens_continue_from_the_log_after_a_restart() -> None:
    locks = held_by_a()
    locks.send(release("a", 1))
    locks.send(request("b"))
    locks.restart()  # a new lock manager folds the partition
    locks.send(release("b", 2))
    assert summary(locks.send(request("c"))) == ["LockGranted c #3"]


def test_a_log_folds_to_the_same_state_with_every_record_duplicated() -> None:
    locks = held_by_a()
    locks.send(request("b"))
    locks.send(request("c", wait_ms=500))
    locks.tick(500)
    locks.send(renew("a", 1))
    locks.send(release("a", 1))
    twice = [e for event in locks.log for e in (event, event)]
    assert fold_log(twice) == fold_log(locks.log) == locks.states


def test_a_late_duplicate_of_an_old_decision_changes_nothing() -> None:
    locks = held_by_a()
    first_grant = locks.log[1]
    locks.send(request("b"))
    locks.send(release("a", 1))
    state = locks.state()
    for old in locks.log:
        if is_decision(old):
            assert evolve(state, old) == state, old
    assert evolve(state, first_grant) == state


def test_decisions_from_another_source_are_not_folded() -> None:
    forged = LockGranted(
        envelope=new_envelope("LockGranted", RESOURCE, source="somebody"),
        resource=RESOURCE,
        request_id="x",
        requester="x",
        fencing_token=99,
        lease_expires_at=T0,
    )
    assert not is_decision(forged)
    assert command_of(forged) is None
    assert fold([forged]) is None
    locks = held_by_a()
    assert evolve(locks.state(), forged) == locks.state()


def test_undecided_requests_in_the_log_are_decided_after_a_restart() -> None:
    locks = held_by_a()
    undecided = request("b")
    locks.log.append(undecided)  # the manager crashed before deciding it
    locks.restart()
    assert locks.state().pending_request("b") is not None
    assert summary(locks.send(as_input(undecided))) == ["LockQueued b @1"]
    assert locks.state().pending == ()
    assert locks.state().waiter("b") is not None


def test_a_queue_entry_whose_request_left_the_log_gets_fallback_parameters() -> None:
    locks = held_by_a()
    locks.send(request("b", ttl_ms=7_000))
    trimmed = [e for e in locks.log if type(e).__name__ != "LockRequested"]
    state = fold_log(trimmed)[RESOURCE]
    waiter = state.waiter("b")
    assert waiter is not None
    assert waiter.ttl_ms == FALLBACK_TTL_MS


def test_the_core_never_raises_an_unexpected_error_denies_the_request() -> None:
    near_the_end = datetime.max.replace(tzinfo=T0.tzinfo) - timedelta(seconds=1)
    result = handle(None, request("a", ttl_ms=60_000), near_the_end)
    [denied] = result.events
    assert isinstance(denied, LockDenied)
    assert denied.reason.startswith("internal error: OverflowError")
    assert result.state is not None
    assert result.state.holder is None
    # other inputs decide nothing instead
    state = LockState(resource=RESOURCE)
    assert handle(state, as_input(release("a")), near_the_end).events == ()


def test_free_resources_keep_their_last_token() -> None:
    locks = held_by_a()
    locks.send(release("a", 1))
    state = locks.state()
    assert (state.holder, state.queue, state.last_token, state.locked) == (None, (), 1, False)
    assert replace(state, last_token=0) != state


def test_a_queued_decision_carries_no_token_and_a_position() -> None:
    locks = held_by_a()
    [queued] = locks.send(request("b"))
    assert isinstance(queued, LockQueued)
    assert queued.position == 1
