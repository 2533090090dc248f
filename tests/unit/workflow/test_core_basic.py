"""Given events, when input, then events: starting, sequencing, joining, skipping, cancelling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agentlog.schemas.events import (
    StepCompleted,
    StepScheduled,
    WorkflowCancelled,
    WorkflowRejected,
    WorkflowStarted,
    WorkflowSucceeded,
    derive_event_id,
)
from agentlog.workflow import (
    JournalEvent,
    StepStatus,
    WorkflowRegistry,
    WorkflowSpec,
    WorkflowStatus,
    decide,
    fold,
    open_tasks,
    task_for,
    tasks_to_publish,
    workflow,
)

from .harness import T0, Driver, summary

CHAIN = (
    workflow("chain", example_input={"n": 1})
    .step("a", agent="alpha", input={"n": "${input.n}"})
    .step("b", agent="beta", after="a", input={"prev": "${steps.a.output}"})
    .step("c", agent="gamma", after="b", input="${steps.b.output.value}")
    .build()
)

DIAMOND = (
    workflow("diamond")
    .step("start", agent="k")
    .step("left", agent="k", after="start")
    .step("right", agent="k", after="start")
    .step(
        "join",
        agent="k",
        after=["left", "right"],
        input=["${steps.left.output}", "${steps.right.output}"],
    )
    .build()
)

ROUTED = (
    workflow("routed")
    .step("classify", agent="classifier")
    .step("bug", agent="fixer", after="classify", when="steps.classify.output.kind == 'bug'")
    .step(
        "feature", agent="planner", after="classify", when="steps.classify.output.kind == 'feature'"
    )
    .step(
        "reply",
        agent="writer",
        after=["bug", "feature"],
        input={
            "bug": "${steps.bug.status}",
            "feature": "${steps.feature.status}",
        },
    )
    .build()
)


def driver(*specs: WorkflowSpec) -> Driver:
    return Driver(WorkflowRegistry(specs))


# --- starting --------------------------------------------------------------------


def test_request_starts_the_workflow_and_schedules_the_first_step() -> None:
    d = driver(CHAIN)
    events = d.request("chain", input={"n": 7})
    assert summary(events) == ["WorkflowStarted", "StepScheduled a"]
    started, scheduled = events
    assert isinstance(started, WorkflowStarted)
    assert isinstance(scheduled, StepScheduled)
    request = d.inputs[0]
    assert started.spec == CHAIN.to_json()
    assert (started.definition, started.version, started.input) == ("chain", 1, {"n": 7})
    assert started.request_event_id == request.envelope.event_id  # type: ignore[union-attr]
    assert scheduled.task_id == "wf-1/a/1/0/1"
    assert scheduled.input == {"n": 7}
    assert scheduled.agent_kind == "alpha"
    assert scheduled.deadline is None
    for index, event in enumerate(events):
        assert event.envelope.event_id == derive_event_id(request.envelope.event_id, index)  # type: ignore[union-attr]
        assert event.envelope.causation_id == request.envelope.event_id  # type: ignore[union-attr]
        assert event.envelope.correlation_id == request.envelope.correlation_id  # type: ignore[union-attr]
        assert event.envelope.occurred_at == T0
        assert event.envelope.key == "wf-1"
        assert event.envelope.source == "orchestrator"


def test_sequential_steps_pass_outputs_along_and_succeed() -> None:
    d = driver(CHAIN)
    d.request("chain", input={"n": 1})
    assert summary(d.complete("a", {"x": 1})) == ["StepCompleted a", "StepScheduled b"]
    assert d.task("b").scheduled.input == {"prev": {"x": 1}}
    assert summary(d.complete("b", {"value": "v"})) == ["StepCompleted b", "StepScheduled c"]
    assert d.task("c").scheduled.input == "v"
    events = d.complete("c", "done")
    assert summary(events) == ["StepCompleted c", "WorkflowSucceeded"]
    assert isinstance(events[-1], WorkflowSucceeded)
    assert events[-1].output == {"c": "done"}  # default output: the sink steps
    assert d.current.status is WorkflowStatus.SUCCEEDED
    assert d.current.output == {"c": "done"}


def test_parallel_branches_start_together_and_the_join_waits_for_both() -> None:
    d = driver(DIAMOND)
    d.request("diamond")
    assert summary(d.complete("start", 0)) == [
        "StepCompleted start",
        "StepScheduled left",
        "StepScheduled right",
    ]
    assert summary(d.complete("right", "R")) == ["StepCompleted right"]
    assert summary(d.complete("left", "L")) == ["StepCompleted left", "StepScheduled join"]
    assert d.task("join").scheduled.input == ["L", "R"]


def test_when_false_skips_the_step_and_later_steps_still_run() -> None:
    d = driver(ROUTED)
    d.request("routed")
    events = d.complete("classify", {"kind": "bug"})
    assert summary(events) == [
        "StepCompleted classify",
        "StepScheduled bug",
        "StepCompleted feature",  # the skip: a step-level StepCompleted, attempt 0
    ]
    skip = events[-1]
    assert isinstance(skip, StepCompleted)
    assert (skip.task_id, skip.attempt, skip.output) == ("wf-1/feature/1/skip", 0, None)
    assert d.current.steps["feature"].status is StepStatus.SKIPPED
    assert summary(d.complete("bug", "patched")) == ["StepCompleted bug", "StepScheduled reply"]
    assert d.task("reply").scheduled.input == {"bug": "completed", "feature": "skipped"}


def test_a_workflow_whose_steps_are_all_skipped_succeeds_at_once() -> None:
    spec = workflow("nothing").step("a", agent="k", when="input.go").build()
    d = driver(spec)
    events = d.request("nothing", input={"go": False})
    assert summary(events) == ["WorkflowStarted", "StepCompleted a", "WorkflowSucceeded"]
    assert d.current.output == {"a": None}


def test_output_template_shapes_the_workflow_output() -> None:
    spec = (
        workflow("out", output={"total": "${sum(steps.a.output)}", "who": "${input.who}"})
        .step("a", agent="k")
        .build()
    )
    d = driver(spec)
    d.request("out", input={"who": "me"})
    events = d.complete("a", [1, 2, 3])
    assert isinstance(events[-1], WorkflowSucceeded)
    assert events[-1].output == {"total": 6, "who": "me"}


def test_a_failing_output_expression_fails_the_workflow() -> None:
    spec = workflow("out", output="${length(steps.a.output)}").step("a", agent="k").build()
    d = driver(spec)
    d.request("out")
    assert summary(d.complete("a", 5)) == ["StepCompleted a", "WorkflowFailed"]
    assert d.current.error is not None
    assert d.current.error.error_kind == "expression_error"


def test_an_input_expression_that_fails_fails_the_workflow_naming_the_step() -> None:
    spec = workflow("bad").step("a", agent="k", input="${length(input.n)}").build()
    d = driver(spec)
    events = d.request("bad", input={"n": 3})
    assert summary(events) == ["WorkflowStarted", "WorkflowFailed a"]
    assert d.current.failed_step == "a"
    assert d.current.error is not None
    assert "step 'a'" in d.current.error.message


def test_step_timeouts_become_deadlines_and_priority_is_carried() -> None:
    spec = workflow("p", priority=5).step("a", agent="k", timeout_ms=30_000).build()
    d = driver(spec)
    d.request("p")
    scheduled = d.task("a").scheduled
    assert scheduled.deadline == T0 + timedelta(seconds=30)
    assert scheduled.priority == 5  # the request left the default, so the spec's applies


def test_an_explicit_request_priority_wins() -> None:
    d = driver(CHAIN)
    d.request("chain", priority=1)
    assert d.current.priority == 1
    assert d.task("a").scheduled.priority == 1


# --- requests that start nothing ------------------------------------------------------


def reject_reason(d: Driver, events: list[JournalEvent]) -> str:
    assert summary(events) == ["WorkflowRejected"]
    rejected = events[0]
    assert isinstance(rejected, WorkflowRejected)
    assert rejected.request_event_id == d.inputs[-1].envelope.event_id  # type: ignore[union-attr]
    assert d.current.status is WorkflowStatus.REJECTED
    return rejected.reason


def test_unknown_definition_is_rejected_with_the_known_versions() -> None:
    d = driver(CHAIN)
    assert "unknown workflow definition 'nope'" in reject_reason(d, d.request("nope"))
    d2 = driver(CHAIN)
    assert "registered versions: 1" in reject_reason(d2, d2.request("chain", version=3))


def test_inline_spec_runs_and_invalid_inline_spec_is_rejected() -> None:
    d = driver()
    assert summary(d.request(spec=CHAIN, input={"n": 1})) == ["WorkflowStarted", "StepScheduled a"]
    bad = CHAIN.to_json()
    bad["steps"][1]["after"] = ["zzz"]  # type: ignore[index,call-overload]
    d2 = driver()
    reason = reject_reason(d2, d2.request(spec=bad))
    assert "step 'b': after: unknown step 'zzz'" in reason
    rejected = d2.journal[0]
    assert isinstance(rejected, WorkflowRejected)
    assert rejected.request["spec"] == bad  # type: ignore[index,call-overload]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, "names no definition and carries no spec"),
        ({"definition": "chain", "priority": 9}, "priority 9 is out of range"),
        ({"definition": "other", "spec": CHAIN}, "definition 'other' differs"),
        ({"spec": CHAIN, "version": 4}, "version 4 differs"),
    ],
)
def test_malformed_requests_are_rejected(kwargs: dict[str, Any], reason: str) -> None:
    d = driver(CHAIN)
    assert reason in reject_reason(d, d.request(**kwargs))


def test_a_request_without_workflow_id_is_rejected() -> None:
    d = Driver(WorkflowRegistry([CHAIN]), workflow_id="")
    assert "workflow_id is empty" in reject_reason(d, d.request("chain"))


def test_input_missing_required_keys_is_rejected() -> None:
    spec = workflow("needs", required_input=["repo", "pr"]).step("a", agent="k").build()
    d = driver(spec)
    reason = reject_reason(d, d.request("needs", input={"repo": "r", "pr": None}))
    assert reason == "invalid input: workflow 'needs' v1 requires repo, pr; missing or null: pr"


def test_a_second_request_for_a_started_workflow_id_decides_nothing() -> None:
    d = driver(CHAIN)
    d.request("chain")
    assert d.request("chain", input={"other": True}) == []
    assert d.request(spec=DIAMOND) == []


def test_a_rejected_workflow_id_stays_rejected() -> None:
    d = driver(CHAIN)
    d.request("nope")
    assert d.request("chain") == []


def test_reusing_an_idempotency_key_for_another_workflow_id_is_rejected() -> None:
    d = Driver(WorkflowRegistry([CHAIN]), workflow_id="wf-2", idempotency_keys={"key-1": "wf-1"})
    reason = reject_reason(d, d.request("chain", idempotency_key="key-1"))
    assert reason == "duplicate request: idempotency key 'key-1' already started workflow 'wf-1'"


def test_the_idempotency_key_is_recorded_and_its_own_workflow_may_reuse_it() -> None:
    d = Driver(WorkflowRegistry([CHAIN]), idempotency_keys={"key-1": "wf-1"})
    events = d.request("chain", idempotency_key="key-1")
    assert isinstance(events[0], WorkflowStarted)
    assert events[0].idempotency_key == "key-1"


# --- cancel, progress, inputs of other workflows --------------------------------------


def test_cancel_ends_the_workflow_and_leaves_the_running_tasks_to_stop() -> None:
    d = driver(DIAMOND)
    d.request("diamond")
    d.complete("start", 0)
    events = d.cancel("user asked")
    assert summary(events) == ["WorkflowCancelled"]
    assert isinstance(events[0], WorkflowCancelled)
    assert events[0].reason == "user asked"
    assert d.current.status is WorkflowStatus.CANCELLED
    assert [t.step for t in open_tasks(d.state)] == ["left", "right"]  # cancel these
    assert tasks_to_publish(d.state) == ()
    assert d.cancel() == []
    assert d.complete("left", "late") == []


def test_cancel_without_reason_says_so() -> None:
    d = driver(CHAIN)
    d.request("chain")
    events = d.cancel()
    assert isinstance(events[0], WorkflowCancelled)
    assert events[0].reason == "cancel requested"


def test_progress_decides_nothing() -> None:
    d = driver(CHAIN)
    d.request("chain")
    assert d.progress("a") == []


def test_inputs_for_unknown_workflows_decide_nothing() -> None:
    d = driver(CHAIN)
    assert d.cancel() == []
    assert d.signal("s", 1) == []
    assert d.state is None


def test_responses_of_another_workflow_id_decide_nothing() -> None:
    d = driver(CHAIN)
    d.request("chain")
    other = Driver(WorkflowRegistry([CHAIN]), workflow_id="wf-9")
    other.request("chain")
    response = other.completed(other.task("a").scheduled, "x")
    assert decide(d.state, response, registry=d.registry, now=T0) == []


# --- tasks for the runner ------------------------------------------------------------------


def test_task_for_derives_a_deterministic_task_from_step_scheduled() -> None:
    d = driver(CHAIN)
    events = d.request("chain", input={"n": 3})
    scheduled = events[1]
    assert isinstance(scheduled, StepScheduled)
    task = task_for(d.state, scheduled)
    assert task is not None
    assert task == task_for(fold(d.journal), scheduled)  # after a crash: the same event
    assert task.envelope.event_id == derive_event_id(scheduled.envelope.event_id, 0)
    assert task.envelope.causation_id == scheduled.envelope.event_id
    assert (task.task_id, task.step, task.attempt, task.agent_kind) == (
        "wf-1/a/1/0/1",
        "a",
        1,
        "alpha",
    )
    assert task.input == {"n": 3}
    assert task.idempotency_key == "wf-1/a/1/0"
    assert task.priority == 3
    assert tasks_to_publish(d.state) == (task,)


def test_task_for_returns_none_once_the_attempt_is_answered() -> None:
    d = driver(CHAIN)
    scheduled = d.request("chain")[1]
    assert isinstance(scheduled, StepScheduled)
    d.complete("a", 1)
    assert task_for(d.state, scheduled) is None
    assert task_for(None, scheduled) is None


def test_retries_keep_the_idempotency_key_of_the_item() -> None:
    d = driver(CHAIN)
    d.request("chain")
    d.fail("a")
    d.fire()
    retry = d.task("a").scheduled
    task = task_for(d.state, retry)
    assert task is not None
    assert (task.task_id, task.attempt, task.idempotency_key) == ("wf-1/a/1/0/2", 2, "wf-1/a/1/0")
