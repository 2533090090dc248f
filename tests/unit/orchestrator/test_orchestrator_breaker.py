"""Per-agent-kind circuit breakers and the outcomes that feed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentlog.agents.orchestrator import BreakerState, CircuitBreakers
from agentlog.agents.orchestrator.breaker import circuit_event, health_signals
from agentlog.workflow import RetryPolicy, WorkflowRegistry, workflow
from tests.unit.workflow.harness import Driver

T0 = datetime(2030, 1, 1, tzinfo=UTC)
COOLDOWN = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_consecutive_failures_open_the_breaker_and_a_success_resets_the_count() -> None:
    breakers = CircuitBreakers(3, COOLDOWN)
    for _ in range(2):
        breakers.record("k", ok=False, now=T0)
    breakers.record("k", ok=True, now=T0)
    breakers.record("k", ok=False, now=T0)
    breakers.record("k", ok=False, now=T0)
    assert breakers.state("k") is BreakerState.CLOSED
    breakers.record("k", ok=False, now=T0)
    assert breakers.state("k") is BreakerState.OPEN
    assert not breakers.admit("k", at(1))
    assert breakers.admit("other", at(1))  # per kind


def test_after_the_cooldown_one_probe_goes_out_and_its_success_closes() -> None:
    breakers = CircuitBreakers(1, COOLDOWN)
    breakers.record("k", ok=False, now=T0)
    assert breakers.next_change() == at(30)
    assert not breakers.admit("k", at(29))
    assert breakers.admit("k", at(30))  # the probe
    assert breakers.state("k") is BreakerState.HALF_OPEN
    assert not breakers.admit("k", at(31))  # one probe at a time
    breakers.record("k", ok=True, now=at(32))
    assert breakers.state("k") is BreakerState.CLOSED
    assert breakers.admit("k", at(32))
    assert breakers.next_change() is None


def test_a_failed_or_unanswered_probe_opens_the_breaker_again() -> None:
    breakers = CircuitBreakers(1, COOLDOWN)
    breakers.record("k", ok=False, now=T0)
    assert breakers.admit("k", at(30))
    breakers.record("k", ok=False, now=at(31))
    assert breakers.state("k") is BreakerState.OPEN
    assert not breakers.admit("k", at(60))
    assert breakers.admit("k", at(61))  # next probe, no answer ...
    assert not breakers.admit("k", at(90))
    assert breakers.admit("k", at(122))  # ... expired at 91, open again, probe at 121+
    assert breakers.state("k") is BreakerState.HALF_OPEN


def test_threshold_zero_disables_breakers() -> None:
    breakers = CircuitBreakers(0, COOLDOWN)
    for _ in range(100):
        breakers.record("k", ok=False, now=T0)
    assert breakers.admit("k", T0)
    assert breakers.state("k") is BreakerState.CLOSED


SPEC = (
    workflow("two", version=1)
    .step("a", agent="alpha", retry=RetryPolicy(max_attempts=2, jitter=0.0, non_retryable=("bad",)))
    .step("b", agent="beta", after="a", timeout_ms=1000)
    .build()
)


def test_health_signals_name_the_kind_and_whether_the_agent_is_healthy() -> None:
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("two", input={})
    before = d.state
    events = d.fail("a", kind="overloaded", retryable=True)
    assert list(health_signals(before, d.inputs[-1], events)) == [("alpha", False)]
    d.fire()  # the retry
    before = d.state
    events = d.complete("a", {"ok": True})
    assert list(health_signals(before, d.inputs[-1], events)) == [("alpha", True)]
    before = d.state
    events = d.fire()  # b's deadline
    assert ("beta", False) in list(health_signals(before, d.inputs[-1], events))


def test_a_terminal_agent_answer_counts_as_healthy() -> None:
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("two", input={})
    before = d.state
    events = d.fail("a", kind="bad", retryable=False)
    assert list(health_signals(before, d.inputs[-1], events)) == [("alpha", True)]


def test_every_state_change_is_recorded_once_in_order() -> None:
    breakers = CircuitBreakers(2, COOLDOWN)
    breakers.record("k", ok=False, now=T0)
    assert breakers.drain() == []  # one failure changes no state
    breakers.record("k", ok=False, now=at(1))
    breakers.admit("k", at(31))  # the probe
    breakers.admit("k", at(62))  # unanswered: open again at 61
    breakers.admit("k", at(91))  # the next probe
    breakers.record("k", ok=True, now=at(92))
    changes = breakers.drain()
    assert [(c.state, c.at, c.retry_at) for c in changes] == [
        (BreakerState.OPEN, at(1), at(31)),
        (BreakerState.HALF_OPEN, at(31), at(61)),
        (BreakerState.OPEN, at(61), at(91)),
        (BreakerState.HALF_OPEN, at(91), at(121)),
        (BreakerState.CLOSED, at(92), None),
    ]
    assert changes[0].failures == 2
    assert changes[0].reason == "2 consecutive failures"
    assert breakers.drain() == []


def test_a_change_becomes_an_agent_kind_circuit_changed_event_keyed_by_kind() -> None:
    breakers = CircuitBreakers(1, COOLDOWN)
    breakers.record("writer", ok=False, now=T0)
    (change,) = breakers.drain()
    event = circuit_event(change, "orchestrator-a")
    assert event.envelope.key == "circuit:writer"
    assert (event.agent_kind, event.state, event.consecutive_failures) == ("writer", "open", 1)
    assert (event.retry_at, event.orchestrator) == (at(30), "orchestrator-a")
    assert event.envelope.occurred_at == T0
