"""Timers derived from state, for the runner to schedule."""

from __future__ import annotations

from datetime import timedelta

from agentlog.workflow import (
    RetryPolicy,
    WorkflowRegistry,
    next_timer,
    pending_timers,
    workflow,
)
from agentlog.workflow.ids import timer_event_id

from .harness import T0, Driver

SPEC = (
    workflow("timed", timeout_ms=300_000)
    .step("each", agent="k", for_each="input", timeout_ms=60_000, retry=RetryPolicy(jitter=0.0))
    .build()
)


def test_pending_timers_lists_every_timer_earliest_first() -> None:
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("timed", input=["x", "y"])
    d.tick(1_000)
    d.fail("each", item=1)
    timers = pending_timers(d.state)
    assert [(t.timer_id, t.due_at - T0) for t in timers] == [
        ("retry:wf-1/each/1/1/1", timedelta(seconds=2)),
        ("deadline:wf-1/each/1/0/1", timedelta(seconds=60)),
        ("workflow-timeout", timedelta(seconds=300)),
    ]
    assert next_timer(d.state) == timers[0]
    assert timers[0].event_id == timer_event_id("wf-1", "retry:wf-1/each/1/1/1")


def test_no_timers_without_a_state_or_after_the_end() -> None:
    assert next_timer(None) is None
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("timed", input=["x"])
    d.cancel()
    assert pending_timers(d.state) == ()


def test_timer_decisions_name_the_timer_as_their_cause() -> None:
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("timed", input=["x"])
    timer = next_timer(d.state)
    assert timer is not None
    events = d.fire()
    assert events
    assert all(e.envelope.causation_id == timer.event_id for e in events)
    assert all(e.envelope.occurred_at == timer.due_at for e in events)
    correlation = d.journal[0].envelope.correlation_id
    assert all(e.envelope.correlation_id == correlation for e in events)
