"""Redelivery is harmless: every input kind, delivered again, decides nothing new.

The runner commits input offsets after appending decisions, so after a crash it
re-reads inputs whose decisions are already in the journal; it recovers its
state by folding the journal. Each test checks both the live state and the
recovered one.
"""

from __future__ import annotations

from agentlog.schemas.events import SignalReceived, TaskCompleted, WorkflowStarted
from agentlog.workflow import (
    RetryPolicy,
    WorkflowRegistry,
    decide,
    evolve,
    fold,
    workflow,
)

from .harness import T0, Driver, summary

SPEC = (
    workflow("redo", timeout_ms=600_000)
    .step("a", agent="k", retry=RetryPolicy(max_attempts=3, jitter=0.0), timeout_ms=60_000)
    .step("gate", signal="go", after="a")
    .step("b", agent="k", after="gate", for_each="input.items")
    .build()
)


def started() -> Driver:
    d = Driver(WorkflowRegistry([SPEC]))
    d.request("redo", input={"items": [1, 2]})
    return d


def assert_redelivery_is_ignored(d: Driver, index: int = -1) -> None:
    before = d.state
    recovered = fold(d.journal)
    assert recovered == before
    item = d.inputs[index]
    assert decide(recovered, item, registry=d.registry, now=d.now) == []
    assert d.redeliver(index) == []
    assert d.state == before


def test_redelivered_request() -> None:
    d = started()
    assert_redelivery_is_ignored(d)


def test_redelivered_task_completed() -> None:
    d = started()
    d.complete("a", "A")
    assert_redelivery_is_ignored(d)


def test_redelivered_task_failed_while_waiting_and_after_the_retry_started() -> None:
    d = started()
    d.fail("a")
    failure = len(d.inputs) - 1
    assert_redelivery_is_ignored(d)
    d.fire()
    assert_redelivery_is_ignored(d, failure)


def test_redelivered_timer() -> None:
    d = started()
    d.fail("a")
    d.fire()
    assert_redelivery_is_ignored(d)


def test_redelivered_signal_is_not_buffered_twice() -> None:
    d = started()
    d.signal("go", {"ok": 1})
    assert len(d.current.signals) == 1
    assert_redelivery_is_ignored(d)
    assert len(d.current.signals) == 1


def test_redelivered_signal_after_it_was_consumed() -> None:
    d = started()
    d.complete("a", "A")
    assert summary(d.signal("go", 1))[:2] == ["SignalReceived", "StepCompleted gate"]
    assert_redelivery_is_ignored(d)


def test_redelivered_cancel() -> None:
    d = started()
    d.cancel("stop")
    assert_redelivery_is_ignored(d)


def test_redelivered_progress() -> None:
    d = started()
    d.progress("a")
    assert_redelivery_is_ignored(d)


def test_an_old_input_redelivered_much_later_is_still_ignored() -> None:
    d = started()
    d.complete("a", "A")
    d.signal("go", None)
    d.complete("b", 1, item=0)
    for index in range(len(d.inputs)):
        assert_redelivery_is_ignored(d, index)


def test_a_duplicated_journal_event_folds_once() -> None:
    d = started()
    d.signal("go", {"ok": 1})
    journal = list(d.journal)
    signal = next(e for e in journal if isinstance(e, SignalReceived))
    assert fold([*journal, signal]) == fold(journal)
    assert fold([journal[0], *journal]) == fold(journal)


def test_evolve_ignores_non_journal_events_and_other_workflows() -> None:
    d = started()
    response = d.completed(d.task("a").scheduled, "x")
    assert isinstance(response, TaskCompleted)
    assert evolve(d.state, response) == d.state
    other = Driver(WorkflowRegistry([SPEC]), workflow_id="wf-2")
    other.request("redo", input={"items": []})
    for event in other.journal:
        assert evolve(d.state, event) == d.state
    assert evolve(None, response) is None


def test_given_a_journal_when_an_input_then_the_same_decisions_as_live() -> None:
    live = started()
    live.complete("a", "A")
    live.signal("go", None)
    given = list(live.journal)
    response = live.completed(live.task("b", 1).scheduled, 2)
    then = live.send(response)
    assert decide(fold(given), response, registry=live.registry, now=live.now) == then
    assert summary(then) == ["StepCompleted b"]
    first = given[0]
    assert isinstance(first, WorkflowStarted)
    assert first.envelope.occurred_at == T0
