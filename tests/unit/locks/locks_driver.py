"""Drive the lock core the way the runner does, without Kafka.

``Locks.send`` calls ``handle`` at the driver's clock, appends the input (when
it is a topic event) and its decisions to an in-memory log, and checks on every
input that folding the whole log from scratch gives the state ``handle``
returned. ``tick`` moves the clock and fires due timers like the runner.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from agentlog.agents.locks.commands import (
    LockDecision,
    LockInput,
    LockTimer,
    ReleaseRequest,
    RenewRequest,
    command_of,
    release_event,
    renew_event,
)
from agentlog.agents.locks.decide import handle
from agentlog.agents.locks.evolve import evolve
from agentlog.agents.locks.state import LockState
from agentlog.agents.locks.timers import next_timer
from agentlog.schemas.events import (
    Event,
    LockReleased,
    LockReleaseRequested,
    LockRenewed,
    LockRenewRequested,
    LockRequested,
    new_envelope,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
RESOURCE = "repo:acme/shop"

#: What clients put on the topic: requests and commands, in either command encoding.
Wire = LockRequested | LockReleaseRequested | LockRenewRequested | LockReleased | LockRenewed


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


def summary(events: Iterable[Event]) -> list[str]:
    """``["LockGranted a #1", "LockQueued b @1"]``: type, request id and token or position."""
    out = []
    for e in events:
        rid = getattr(e, "request_id", "?")
        if (token := getattr(e, "fencing_token", None)) is not None:
            out.append(f"{type(e).__name__} {rid} #{token}")
        elif (position := getattr(e, "position", None)) is not None:
            out.append(f"{type(e).__name__} {rid} @{position}")
        else:
            out.append(f"{type(e).__name__} {rid}")
    return out


def fold_log(log: Iterable[Event]) -> dict[str, LockState]:
    """Every resource's state folded from a log (commands and decisions, in order)."""
    states: dict[str, LockState] = {}
    for event in log:
        resource = getattr(event, "resource", None)
        if isinstance(resource, str):
            state = evolve(states.get(resource), event)
            if state is not None:
                states[resource] = state
    return states


def request(
    request_id: str,
    *,
    resource: str = RESOURCE,
    ttl_ms: int = 1_000,
    wait_ms: int = 5_000,
    requester: str | None = None,
    at: datetime = T0,
) -> LockRequested:
    return LockRequested(
        envelope=new_envelope("LockRequested", resource, source="test", occurred_at=at),
        resource=resource,
        request_id=request_id,
        requester=requester or f"agent-{request_id}",
        ttl_ms=ttl_ms,
        wait_timeout_ms=wait_ms,
    )


def release(request_id: str, token: int = 0, *, resource: str = RESOURCE) -> LockReleaseRequested:
    """A holder's release command as it travels on the topic."""
    return release_event(resource, request_id, token, source="test")


def renew(
    request_id: str, token: int = 0, ttl_ms: int = 1_000, *, resource: str = RESOURCE
) -> LockRenewRequested:
    """A holder's renew command as it travels on the topic."""
    return renew_event(resource, request_id, token, ttl_ms, source="test")


def interim_release(
    request_id: str, token: int = 0, *, resource: str = RESOURCE, source: str = "old-client"
) -> LockReleased:
    """A release command in the deprecated interim encoding, as older clients send it."""
    return LockReleased(
        envelope=new_envelope("LockReleased", resource, source=source),
        resource=resource,
        request_id=request_id,
        fencing_token=token,
    )


def interim_renew(
    request_id: str,
    token: int = 0,
    ttl_ms: int = 1_000,
    *,
    resource: str = RESOURCE,
    source: str = "old-client",
) -> LockRenewed:
    """A renew command in the deprecated interim encoding: the length as ``occurred_at + ttl``."""
    envelope = new_envelope("LockRenewed", resource, source=source)
    return LockRenewed(
        envelope=envelope,
        resource=resource,
        request_id=request_id,
        fencing_token=token,
        lease_expires_at=envelope.occurred_at + ms(ttl_ms),
    )


def as_input(item: LockInput | Wire) -> LockInput:
    """The core's input for a topic event (commands) or a timer."""
    if isinstance(item, LockRequested | ReleaseRequest | RenewRequest | LockTimer):
        return item
    command = command_of(item)
    assert command is not None, f"{item} is not a command"
    return command


class Locks:
    """A lock manager without Kafka: live states, a log, a clock that moves when told."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.log: list[Event] = []
        self.states: dict[str, LockState] = {}

    def state(self, resource: str = RESOURCE) -> LockState:
        return self.states[resource]

    def send(self, event: LockInput | Wire) -> list[LockDecision]:
        """Decide on one input at the current time; log it; check the fold."""
        item = as_input(event)
        if isinstance(event, Wire):
            self.log.append(event)
        decision = handle(self.states.get(item.resource), item, self.now)
        if decision.events:
            assert decision.state is not None
            self.states[item.resource] = decision.state
            self.log.extend(decision.events)
        folded = fold_log(self.log)
        if item.resource in self.states:
            assert folded[item.resource] == self.states[item.resource], "fold != decide"
        return list(decision.events)

    def tick(self, n_ms: float) -> list[LockDecision]:
        """Move the clock and fire every due timer, like the runner."""
        self.now += ms(n_ms)
        fired: list[LockDecision] = []
        for resource in list(self.states):
            timer = next_timer(self.states[resource])
            while timer is not None and timer.due_at <= self.now:
                events = self.send(timer)
                assert events, f"a due timer decided nothing: {timer}"
                fired.extend(events)
                timer = next_timer(self.states[resource])
        return fired

    def restart(self) -> None:
        """A new lock manager: state folded from the log."""
        self.states = fold_log(self.log)


def new_id() -> str:
    return uuid.uuid4().hex[:8]
