"""The lock core against a simple model, under simulated time, with crashes.

A ``RuleBasedStateMachine`` plays clients and a lock manager around one log:
clients append requests, releases (right, stale or wrong tokens) and renewals,
in the command events or the deprecated interim encoding of older clients;
the manager processes the unread part of the log in batches, fires due timers,
commits (or not), and crashes (state re-folded from the log, reading resumes
at the last commit, so decided inputs are redelivered). The model is a few
lists and dicts with the rules written the plain way; after every input the
core's decisions and state must match it. Checked in every run:

* mutual exclusion: lease intervals of one resource never overlap (a grant
  comes after the previous lease was released or ran out; a renewal only
  extends a lease that is still valid);
* fencing tokens: strictly increasing per resource in grant order, by one;
* each request: at most one grant and at most one end; FIFO hand-over;
* the live state equals the fold of the log; redelivery decides nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agentlog.agents.locks.commands import (
    ReleaseRequest,
    RenewRequest,
    command_of,
    is_decision,
    release_event,
    renew_event,
)
from agentlog.agents.locks.decide import handle
from agentlog.agents.locks.state import MAX_TTL_MS, LockState
from agentlog.agents.locks.timers import next_timer
from agentlog.schemas.events import (
    Event,
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockRenewed,
    LockRequested,
)
from tests.unit.locks.locks_driver import (
    T0,
    fold_log,
    interim_release,
    interim_renew,
    ms,
    request,
    summary,
)

RESOURCES = ("repo:a", "repo:b")


# -- the model ------------------------------------------------------------------------------


@dataclass
class MLease:
    request_id: str
    token: int
    expires: datetime


@dataclass
class MWaiter:
    request_id: str
    ttl_ms: int
    deadline: datetime


@dataclass
class MResource:
    holder: MLease | None = None
    queue: list[MWaiter] = field(default_factory=list)
    last_token: int = 0
    known: set[str] = field(default_factory=set)


class Model:
    """The rules of ``docs/locks.md``, written the plain way."""

    def __init__(self) -> None:
        self.resources = {r: MResource() for r in RESOURCES}

    def request(self, r: str, rid: str, ttl_ms: int, wait_ms: int, now: datetime) -> list[str]:
        res = self.resources[r]
        out = self.advance(r, now)
        if rid in res.known:
            return out
        res.known.add(rid)
        if not 0 < ttl_ms <= MAX_TTL_MS or wait_ms < 0:
            return [*out, f"LockDenied {rid}"]
        if res.holder is None:
            return out + self._grant(res, rid, ttl_ms, now)
        if wait_ms == 0:
            return [*out, f"LockDenied {rid}"]
        res.queue.append(MWaiter(rid, ttl_ms, now + ms(wait_ms)))
        return [*out, f"LockQueued {rid} @{len(res.queue)}"]

    def release(self, r: str, rid: str, token: int, now: datetime) -> list[str]:
        res = self.resources[r]
        out = self.advance(r, now)
        holder = res.holder
        if holder is not None and holder.request_id == rid and token in (0, holder.token):
            res.holder = None
            return [*out, f"LockReleased {rid} #{holder.token}", *self._next(res, now)]
        waiter = next((w for w in res.queue if w.request_id == rid), None)
        if waiter is not None:
            res.queue.remove(waiter)
            return [*out, f"LockDenied {rid}"]
        return out

    def renew(self, r: str, rid: str, token: int, ttl_ms: int, now: datetime) -> list[str]:
        res = self.resources[r]
        out = self.advance(r, now)
        holder = res.holder
        if holder is None or holder.request_id != rid or token not in (0, holder.token):
            return out
        if not 0 < ttl_ms <= MAX_TTL_MS:
            return out
        holder.expires = now + ms(ttl_ms)
        return [*out, f"LockRenewed {rid} #{holder.token}"]

    def advance(self, r: str, now: datetime) -> list[str]:
        res = self.resources[r]
        out: list[str] = []
        while True:
            due = [(w.deadline, 0, w.request_id) for w in res.queue if w.deadline <= now]
            if res.holder is not None and res.holder.expires <= now:
                due.append((res.holder.expires, 1, res.holder.request_id))
            if not due:
                return out
            _, kind, rid = min(due)
            if kind == 0:
                res.queue = [w for w in res.queue if w.request_id != rid]
                out.append(f"LockDenied {rid}")
            else:
                assert res.holder is not None
                out.append(f"LockExpired {rid} #{res.holder.token}")
                res.holder = None
                out += self._next(res, now)

    def _next(self, res: MResource, now: datetime) -> list[str]:
        if res.holder is not None or not res.queue:
            return []
        waiter = res.queue.pop(0)
        return self._grant(res, waiter.request_id, waiter.ttl_ms, now)

    @staticmethod
    def _grant(res: MResource, rid: str, ttl_ms: int, now: datetime) -> list[str]:
        res.last_token += 1
        res.holder = MLease(rid, res.last_token, now + ms(ttl_ms))
        return [f"LockGranted {rid} #{res.last_token}"]


# -- the machine -----------------------------------------------------------------------------

TTLS = st.sampled_from([100, 400, 1_000, 3_000])
WAITS = st.sampled_from([0, 200, 1_000, 5_000])


class LockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.log: list[Event] = []
        self.read = 0  # the manager has read log[:read]
        self.committed = 0  # the group's committed offset
        self.states: dict[str, LockState] = {}
        self.model = Model()
        #: event ids of commands whose decision was not empty
        self.decided: set[str] = set()
        self.request_ids: list[tuple[str, str]] = []
        self.tokens: dict[str, int] = {}  # request id -> its granted token
        self.counter = 0
        self.redelivered = 0

    # -- clients ------------------------------------------------------------------

    @rule(resource=st.sampled_from(RESOURCES), ttl=TTLS, wait=WAITS, bad=st.integers(0, 15))
    def client_requests(self, resource: str, ttl: int, wait: int, bad: int) -> None:
        self.counter += 1
        rid = f"r{self.counter}"
        self.request_ids.append((resource, rid))
        self.log.append(
            request(
                rid, resource=resource, ttl_ms=0 if bad == 0 else ttl, wait_ms=wait, at=self.now
            )
        )

    @rule(data=st.data())
    def client_repeats_a_request_id(self, data: st.DataObject) -> None:
        if self.request_ids:
            resource, rid = data.draw(st.sampled_from(self.request_ids))
            self.log.append(request(rid, resource=resource, at=self.now))

    @rule(data=st.data(), token=st.sampled_from(["right", "zero", "old"]), old=st.booleans())
    def client_releases(self, data: st.DataObject, token: str, old: bool) -> None:
        if self.request_ids:
            resource, rid = data.draw(st.sampled_from(self.request_ids))
            self._release(resource, rid, self._token(rid, token), old)

    @rule(
        data=st.data(), token=st.sampled_from(["right", "zero", "old"]), ttl=TTLS, old=st.booleans()
    )
    def client_renews(self, data: st.DataObject, token: str, ttl: int, old: bool) -> None:
        if self.request_ids:
            resource, rid = data.draw(st.sampled_from(self.request_ids))
            self._renew(resource, rid, self._token(rid, token), ttl, old)

    @rule(resource=st.sampled_from(RESOURCES), old=st.booleans())
    def the_holder_releases(self, resource: str, old: bool) -> None:
        holder = self.model.resources[resource].holder
        if holder is not None:
            self._release(resource, holder.request_id, holder.token, old)

    @rule(resource=st.sampled_from(RESOURCES), ttl=TTLS, old=st.booleans())
    def the_holder_renews(self, resource: str, ttl: int, old: bool) -> None:
        holder = self.model.resources[resource].holder
        if holder is not None:
            self._renew(resource, holder.request_id, holder.token, ttl, old)

    def _release(self, resource: str, rid: str, token: int, old: bool) -> None:
        """A release command; ``old``: an older client's interim encoding (deprecated)."""
        if old:
            event("interim release command")
            self.log.append(interim_release(rid, token, resource=resource, source="t"))
        else:
            self.log.append(release_event(resource, rid, token, source="t"))

    def _renew(self, resource: str, rid: str, token: int, ttl: int, old: bool) -> None:
        """A renew command; ``old``: an older client's interim encoding (deprecated)."""
        if old:
            event("interim renew command")
            self.log.append(interim_renew(rid, token, ttl, resource=resource, source="t"))
        else:
            self.log.append(renew_event(resource, rid, token, ttl, source="t"))

    def _token(self, rid: str, kind: str) -> int:
        granted = self.tokens.get(rid, 0)
        return {"right": granted, "zero": 0, "old": max(0, granted - 1)}[kind]

    # -- time and the manager ---------------------------------------------------------

    @rule(n=st.integers(0, 2_500))
    def time_passes(self, n: int) -> None:
        self.now += ms(n)

    @rule(commit=st.booleans())
    def manager_processes_a_batch(self, commit: bool) -> None:
        batch, self.read = self.log[self.read :], len(self.log)
        for record in batch:
            command = command_of(record)
            if command is None:
                continue  # decisions read back
            redelivery = command.envelope.event_id in self.decided
            decision = handle(self.states.get(command.resource), command, self.now)
            if redelivery:
                self.redelivered += 1
                event("redelivered a decided input")
                assert decision.events == (), "a redelivered input decided again"
                continue
            expected = self._expected(command)
            assert summary(decision.events) == expected
            self._take(command.resource, decision.state, decision.events)
            if decision.events:
                self.decided.add(command.envelope.event_id)
        self._fire_timers()
        self.read = len(self.log)  # the manager's own decisions are not inputs
        if commit:
            self.committed = self.read
        self._check_fold()

    @rule()
    def manager_crashes_and_restarts(self) -> None:
        if any(s.pending for s in fold_log(self.log).values()):
            event("crash with undecided requests in the log")
        self.states = fold_log(self.log)
        self.read = self.committed

    def _expected(self, command: LockRequested | ReleaseRequest | RenewRequest) -> list[str]:
        model, now = self.model, self.now
        if isinstance(command, LockRequested):
            return model.request(
                command.resource, command.request_id, command.ttl_ms, command.wait_timeout_ms, now
            )
        if isinstance(command, ReleaseRequest):
            return model.release(command.resource, command.request_id, command.fencing_token, now)
        return model.renew(
            command.resource, command.request_id, command.fencing_token, command.ttl_ms, now
        )

    def _fire_timers(self) -> None:
        for resource in RESOURCES:
            timer = next_timer(self.states.get(resource))
            while timer is not None and timer.due_at <= self.now:
                decision = handle(self.states.get(resource), timer, self.now)
                assert summary(decision.events) == self.model.advance(resource, self.now)
                assert decision.events, "a due timer decided nothing"
                self._take(resource, decision.state, decision.events)
                timer = next_timer(self.states.get(resource))

    def _take(self, resource: str, state: LockState | None, events: tuple[Event, ...]) -> None:
        if not events:
            return
        assert state is not None
        self.states[resource] = state
        self.log.extend(events)
        kinds = [type(e).__name__ for e in events]
        for e in events:
            if isinstance(e, LockGranted):
                self.tokens[e.request_id] = e.fencing_token
        for pair in itertools.pairwise(kinds):
            if pair[1] == "LockGranted":
                event(f"hand-over after {pair[0]}")
        if "LockRenewed" in kinds:
            event("renewed")

    def _check_fold(self) -> None:
        assert fold_log(self.log) == self.states

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def the_state_matches_the_model(self) -> None:
        for resource in RESOURCES:
            model = self.model.resources[resource]
            state = self.states.get(resource) or LockState(resource=resource)
            holder = state.holder
            got = (holder.request_id, holder.token, holder.expires_at) if holder else None
            want = model.holder
            assert got == ((want.request_id, want.token, want.expires) if want else None)
            assert [w.request_id for w in state.queue] == [w.request_id for w in model.queue]
            assert [w.deadline for w in state.queue] == [w.deadline for w in model.queue]
            assert state.last_token == model.last_token

    @invariant()
    def leases_never_overlap_and_tokens_increase_by_one(self) -> None:
        for resource in RESOURCES:
            check_leases([e for e in self.log if getattr(e, "resource", None) == resource])


def check_leases(log: list[Event]) -> None:
    """Mutual exclusion, token order and one grant / one end per request, from a log."""
    decisions = [e for e in log if is_decision(e)]
    granted: dict[str, LockGranted] = {}
    ended: set[str] = set()
    #: token -> [start, valid until]
    leases: dict[int, list[datetime]] = {}
    last_token = 0
    for e in decisions:
        now = e.envelope.occurred_at
        match e:
            case LockGranted():
                assert e.fencing_token == last_token + 1, "tokens go up by one in grant order"
                assert e.request_id not in granted
                assert e.request_id not in ended
                if last_token:
                    previous = leases[last_token]
                    assert previous[1] <= now, f"grant {e.fencing_token} overlaps {previous}"
                last_token = e.fencing_token
                granted[e.request_id] = e
                leases[e.fencing_token] = [now, e.lease_expires_at]
            case LockRenewed():
                lease = leases[e.fencing_token]
                assert lease[1] > now, "a renewal extended a lease that had run out"
                lease[1] = e.lease_expires_at
            case LockReleased():
                lease = leases[e.fencing_token]
                assert lease[1] > now, "released after it ran out: should be an expiry"
                lease[1] = now
                ended.add(e.request_id)
            case LockExpired():
                lease = leases[e.fencing_token]
                assert lease[1] <= now, "expired before its lease ran out"
                lease[1] = min(lease[1], now)
                ended.add(e.request_id)
            case LockDenied():
                assert e.request_id not in granted
                assert e.request_id not in ended
                ended.add(e.request_id)
            case LockQueued():
                assert e.request_id not in granted
                assert e.request_id not in ended


LockMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLockMachine = LockMachine.TestCase


def test_the_model_checker_catches_an_overlap() -> None:
    """The invariant is not vacuous: two grants with overlapping leases fail it."""
    from agentlog.agents.locks.state import MANAGER_SOURCE
    from agentlog.schemas.events import new_envelope

    def grant(rid: str, token: int, at: datetime) -> LockGranted:
        return LockGranted(
            envelope=new_envelope("LockGranted", "r", source=MANAGER_SOURCE, occurred_at=at),
            resource="r",
            request_id=rid,
            requester=rid,
            fencing_token=token,
            lease_expires_at=at + timedelta(seconds=1),
        )

    try:
        check_leases([grant("a", 1, T0), grant("b", 2, T0 + ms(500))])
    except AssertionError:
        return
    raise AssertionError("overlapping leases were not detected")
