"""Retries with backoff, non-retryable errors, step and workflow timeouts, internal errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentlog.schemas.events import (
    StepFailed,
    StepRetryScheduled,
    StepTimedOut,
    WorkflowFailed,
    WorkflowRejected,
    WorkflowRequested,
    WorkflowStarted,
)
from agentlog.workflow import (
    RetryPolicy,
    StepStatus,
    TaskStatus,
    WorkflowRegistry,
    WorkflowSpec,
    WorkflowStatus,
    next_timer,
    workflow,
)
from agentlog.workflow.retry import backoff_ms

from .harness import T0, Driver, summary

NO_JITTER = RetryPolicy(
    max_attempts=3,
    initial_backoff_ms=1_000,
    multiplier=3.0,
    max_backoff_ms=5_000,
    jitter=0.0,
    non_retryable=("invalid_input",),
)
FLAKY = (
    workflow("flaky")
    .step("call", agent="caller", retry=NO_JITTER, timeout_ms=10_000)
    .step("after", agent="k", after="call")
    .build()
)


def driver(spec: WorkflowSpec = FLAKY) -> Driver:
    d = Driver(WorkflowRegistry([spec]))
    d.request(spec.name)
    return d


def test_a_retryable_failure_schedules_a_retry_after_the_backoff() -> None:
    d = driver()
    events = d.fail("call", kind="rate_limited", message="429")
    assert summary(events) == ["StepFailed call", "StepRetryScheduled call"]
    failed, retry = events
    assert isinstance(failed, StepFailed)
    assert (failed.error_kind, failed.message, failed.retryable) == ("rate_limited", "429", True)
    assert isinstance(retry, StepRetryScheduled)
    assert (retry.task_id, retry.attempt, retry.next_attempt) == ("wf-1/call/1/0/1", 1, 2)
    assert (retry.backoff_ms, retry.retry_at) == (1_000, T0 + timedelta(seconds=1))
    assert d.task("call").status is TaskStatus.RETRY_WAIT
    assert d.current.steps["call"].status is StepStatus.RUNNING
    timer = next_timer(d.state)
    assert timer is not None
    assert (timer.timer_id, timer.due_at) == ("retry:wf-1/call/1/0/1", retry.retry_at)


def test_the_retry_timer_schedules_the_next_attempt_with_the_same_input() -> None:
    d = driver()
    d.fail("call")
    events = d.fire()
    assert summary(events) == ["StepScheduled call"]
    task = d.task("call")
    assert (task.task_id, task.attempt, task.status) == ("wf-1/call/1/0/2", 2, TaskStatus.RUNNING)
    assert task.deadline == d.now + timedelta(seconds=10)  # each attempt has its own deadline


def test_backoff_grows_and_is_capped_then_attempts_run_out() -> None:
    d = driver()
    d.fail("call")
    d.fire()
    events = d.fail("call")
    assert isinstance(events[1], StepRetryScheduled)
    assert events[1].backoff_ms == 3_000
    d.fire()
    events = d.fail("call", kind="rate_limited", message="still 429")
    assert summary(events) == ["StepFailed call", "WorkflowFailed call"]
    failed, workflow_failed = events
    assert isinstance(failed, StepFailed)
    assert failed.retryable is False  # the orchestrator will not retry it
    assert isinstance(workflow_failed, WorkflowFailed)
    assert workflow_failed.error_kind == "rate_limited"
    assert workflow_failed.message == "step 'call' failed after 3 attempts: still 429"
    assert d.current.status is WorkflowStatus.FAILED
    assert d.current.failed_step == "call"
    assert next_timer(d.state) is None


def test_backoff_is_capped_at_max_backoff() -> None:
    assert [backoff_ms(NO_JITTER, "t", attempt) for attempt in (1, 2, 3, 4, 50)] == [
        1_000,
        3_000,
        5_000,
        5_000,
        5_000,
    ]


def test_jitter_is_deterministic_bounded_and_spreads_tasks() -> None:
    policy = RetryPolicy(initial_backoff_ms=1_000, jitter=0.5, max_backoff_ms=10_000)
    delays = [backoff_ms(policy, f"wf/step/1/{item}/1", 1) for item in range(50)]
    assert delays == [backoff_ms(policy, f"wf/step/1/{item}/1", 1) for item in range(50)]
    assert all(500 <= d <= 1_500 for d in delays)
    assert len(set(delays)) > 40


def test_huge_multipliers_do_not_overflow() -> None:
    policy = RetryPolicy(multiplier=1e300, max_backoff_ms=7, initial_backoff_ms=1, jitter=0.0)
    assert backoff_ms(policy, "t", 100) == 7


def test_a_non_retryable_failure_fails_at_once() -> None:
    d = driver()
    events = d.fail("call", retryable=False, kind="refused")
    assert summary(events) == ["StepFailed call", "WorkflowFailed call"]


def test_error_kinds_listed_as_non_retryable_are_not_retried() -> None:
    d = driver()
    events = d.fail("call", retryable=True, kind="invalid_input")
    assert summary(events) == ["StepFailed call", "WorkflowFailed call"]


def test_continue_on_failure_records_the_failure_and_goes_on() -> None:
    spec = (
        workflow("tolerant")
        .step("optional", agent="k", retry=RetryPolicy(max_attempts=1), continue_on_failure=True)
        .step("next", agent="k", after="optional", input="${steps.optional.status}")
        .build()
    )
    d = driver(spec)
    events = d.fail("optional")
    assert summary(events) == ["StepFailed optional", "StepScheduled next"]
    assert d.task("next").scheduled.input == "failed"
    assert d.current.steps["optional"].error is not None


def test_a_step_timeout_times_out_the_attempt_then_retries() -> None:
    d = driver()
    timer = next_timer(d.state)
    assert timer is not None
    assert (timer.timer_id, timer.due_at) == (
        "deadline:wf-1/call/1/0/1",
        T0 + timedelta(seconds=10),
    )
    events = d.fire()
    assert summary(events) == ["StepTimedOut call", "StepRetryScheduled call"]
    timed_out = events[0]
    assert isinstance(timed_out, StepTimedOut)
    assert timed_out.deadline == T0 + timedelta(seconds=10)
    assert d.task("call").status is TaskStatus.RETRY_WAIT
    assert summary(d.fire()) == ["StepScheduled call"]


def test_a_late_answer_to_a_timed_out_attempt_is_ignored() -> None:
    d = driver()
    first = d.task("call").scheduled
    d.fire()
    assert d.send(d.completed(first, "too late")) == []
    d.fire()
    assert d.send(d.completed(first, "too late")) == []


def test_the_last_timeout_fails_the_step_and_the_workflow() -> None:
    spec = (
        workflow("slow")
        .step("call", agent="k", timeout_ms=5, retry=RetryPolicy(max_attempts=1))
        .build()
    )
    d = driver(spec)
    events = d.fire()
    assert summary(events) == ["StepTimedOut call", "StepFailed call", "WorkflowFailed call"]
    assert isinstance(events[2], WorkflowFailed)
    assert events[2].error_kind == "timeout"


def test_timeout_listed_as_non_retryable_is_not_retried() -> None:
    policy = RetryPolicy(max_attempts=5, non_retryable=("timeout",))
    spec = workflow("slow").step("call", agent="k", timeout_ms=5, retry=policy).build()
    d = driver(spec)
    assert summary(d.fire())[-1] == "WorkflowFailed call"


def test_the_workflow_timeout_fails_the_workflow() -> None:
    spec = workflow("bounded", timeout_ms=60_000).step("call", agent="k").build()
    d = driver(spec)
    timer = next_timer(d.state)
    assert timer is not None
    assert (timer.timer_id, timer.due_at) == ("workflow-timeout", T0 + timedelta(minutes=1))
    events = d.fire()
    assert summary(events) == ["WorkflowFailed"]
    assert isinstance(events[0], WorkflowFailed)
    assert (events[0].step, events[0].error_kind) == (None, "timeout")
    assert "timeout_ms=60000" in events[0].message


def test_the_registry_default_deadline_bounds_a_workflow_whose_spec_sets_none() -> None:
    """A step nobody serves still ends: AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS."""
    spec = workflow("unbounded").step("call", agent="nobody-serves-this").build()
    d = Driver(WorkflowRegistry([spec], default_timeout_ms=30_000))
    started = d.request("unbounded")[0]
    assert isinstance(started, WorkflowStarted)
    assert started.spec["timeout_ms"] == 30_000  # recorded: restarts and replays keep it
    timer = next_timer(d.state)
    assert timer is not None
    assert (timer.timer_id, timer.due_at) == ("workflow-timeout", T0 + timedelta(seconds=30))
    events = d.fire()
    assert summary(events) == ["WorkflowFailed"]
    assert isinstance(events[0], WorkflowFailed)
    assert (events[0].step, events[0].error_kind) == (None, "timeout")


def test_a_spec_deadline_wins_over_the_registry_default_and_inline_specs_get_it_too() -> None:
    own = workflow("bounded", timeout_ms=60_000).step("call", agent="k").build()
    inline = workflow("inline").step("call", agent="k").build()
    registry = WorkflowRegistry([own], default_timeout_ms=5_000)
    started = Driver(registry).request("bounded")[0]
    assert isinstance(started, WorkflowStarted)
    assert started.spec["timeout_ms"] == 60_000
    started = Driver(registry).request(spec=inline)[0]
    assert isinstance(started, WorkflowStarted)
    assert started.spec["timeout_ms"] == 5_000
    started = Driver(WorkflowRegistry([own])).request(spec=inline)[0]
    assert isinstance(started, WorkflowStarted)
    assert started.spec["timeout_ms"] is None  # no default: no deadline
    with pytest.raises(ValueError, match="default_timeout_ms=0"):
        WorkflowRegistry(default_timeout_ms=0)


def test_a_timer_fed_before_it_is_due_decides_nothing() -> None:
    spec = workflow("bounded", timeout_ms=60_000).step("call", agent="k").build()
    d = driver(spec)
    timer = next_timer(d.state)
    assert timer is not None
    assert d.send(timer) == []  # the clock is still at T0
    d.now = timer.due_at
    assert summary(d.send(timer)) == ["WorkflowFailed"]


def test_a_stale_timer_decides_nothing() -> None:
    d = driver()
    deadline = next_timer(d.state)
    assert deadline is not None
    d.complete("call", "ok")
    d.now = deadline.due_at
    assert d.send(deadline) == []


class BrokenRegistry(WorkflowRegistry):
    """A registry whose storage fails: decide must turn that into a rejection."""

    def find(self, name: str, version: int | None = None) -> WorkflowSpec | None:
        raise OSError("disk on fire")


def test_decide_never_raises_an_error_becomes_a_rejection() -> None:
    d = Driver(BrokenRegistry())
    events = d.request("anything")
    assert summary(events) == ["WorkflowRejected"]
    assert isinstance(events[0], WorkflowRejected)
    assert events[0].reason == (
        "internal error deciding on WorkflowRequested: OSError: disk on fire"
    )


def test_naive_now_is_taken_as_utc() -> None:
    d = Driver(WorkflowRegistry([FLAKY]))
    request = WorkflowRequested(
        envelope=d.envelope("WorkflowRequested"), workflow_id="wf-1", definition="flaky", input=None
    )
    d.now = T0.replace(tzinfo=None)
    events = d.send(request)
    assert events[0].envelope.occurred_at == T0


@pytest.mark.parametrize("retryable", [True, False])
def test_a_failure_of_an_unknown_task_decides_nothing(retryable: bool) -> None:
    d = driver()
    d.complete("call", "ok")
    assert d.fail("call", retryable=retryable) == []
