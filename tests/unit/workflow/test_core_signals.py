"""Signal steps: wait for a named signal (e.g. a human approval) and complete with its payload."""

from __future__ import annotations

from datetime import timedelta

from agentlog.schemas.events import SignalReceived, StepCompleted, StepScheduled
from agentlog.workflow import (
    StepStatus,
    WorkflowRegistry,
    repeat,
    task_for,
    tasks_to_publish,
    workflow,
)

from .harness import T0, Driver, summary

APPROVAL = (
    workflow("approval")
    .step("draft", agent="writer")
    .step(
        "approve",
        signal="approval",
        after="draft",
        timeout_ms=3_600_000,
        input={"draft": "${steps.draft.output}"},
    )
    .step(
        "publish",
        agent="publisher",
        after="approve",
        when="steps.approve.output.ok",
        input="${steps.approve.output}",
    )
    .build()
)


def driver() -> Driver:
    d = Driver(WorkflowRegistry([APPROVAL]))
    d.request("approval")
    return d


def test_a_signal_step_waits_without_a_task() -> None:
    d = driver()
    events = d.complete("draft", "text")
    assert summary(events) == ["StepCompleted draft", "StepScheduled approve"]
    wait = events[1]
    assert isinstance(wait, StepScheduled)
    assert (wait.agent_kind, wait.input, wait.task_id) == (
        "",
        {"draft": "text"},
        "wf-1/approve/1/0/1",
    )
    assert wait.deadline == T0 + timedelta(hours=1)
    assert task_for(d.state, wait) is None  # nothing to publish
    assert tasks_to_publish(d.state) == ()


def test_the_signal_completes_the_waiting_step_with_its_payload() -> None:
    d = driver()
    d.complete("draft", "text")
    events = d.signal("approval", {"ok": True, "by": "ana"})
    assert summary(events) == ["SignalReceived", "StepCompleted approve", "StepScheduled publish"]
    received, completed = events[0], events[1]
    assert isinstance(received, SignalReceived)
    assert (received.signal, received.payload) == ("approval", {"ok": True, "by": "ana"})
    assert isinstance(completed, StepCompleted)
    assert completed.output == {"ok": True, "by": "ana"}
    assert d.task("publish").scheduled.input == {"ok": True, "by": "ana"}


def test_a_signal_sent_before_the_step_waits_is_buffered() -> None:
    d = driver()
    assert summary(d.signal("approval", {"ok": False})) == ["SignalReceived"]
    assert [s.name for s in d.current.signals] == ["approval"]
    events = d.complete("draft", "text")
    assert summary(events) == [
        "StepCompleted draft",
        "StepScheduled approve",
        "StepCompleted approve",
        "StepCompleted publish",  # skipped: not ok
        "WorkflowSucceeded",
    ]
    assert d.current.signals == ()


def test_an_agent_cannot_answer_a_signal_wait() -> None:
    d = driver()
    d.complete("draft", "text")
    assert d.complete("approve", {"ok": True}) == []


def test_signals_nobody_waits_for_are_recorded_but_not_kept() -> None:
    d = driver()
    assert summary(d.signal("other", 1)) == ["SignalReceived"]
    assert d.current.signals == ()


def test_a_signal_wait_times_out_and_fails_the_workflow() -> None:
    d = driver()
    d.complete("draft", "text")
    events = d.fire()
    assert summary(events) == [
        "StepTimedOut approve",
        "StepFailed approve",
        "WorkflowFailed approve",
    ]


def test_each_loop_round_consumes_a_new_signal() -> None:
    spec = (
        workflow("review-rounds")
        .step("revise", agent="writer", input="${iteration}")
        .step(
            "review",
            signal="verdict",
            after="revise",
            repeat=repeat(
                "revise",
                while_="steps.review.output == 'again'",
                max_iterations=5,
            ),
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("review-rounds")
    d.complete("revise", "v1")
    d.signal("verdict", "again")
    assert d.current.steps["revise"].run == 2
    d.complete("revise", "v2")
    assert d.current.steps["review"].status is StepStatus.RUNNING
    assert summary(d.signal("verdict", "fine"))[-1] == "WorkflowSucceeded"
    assert d.current.output == {"review": "fine"}
