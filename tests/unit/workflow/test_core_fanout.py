"""for_each fan-out and its join."""

from __future__ import annotations

from agentlog.schemas.events import StepCompleted, StepScheduled
from agentlog.workflow import StepStatus, WorkflowRegistry, WorkflowStatus, workflow

from .harness import Driver, summary

DOCS = (
    workflow("docs")
    .step(
        "write", agent="writer", for_each="input.sections", input={"s": "${item}", "i": "${index}"}
    )
    .step("merge", agent="merger", after="write", input="${steps.write.output}")
    .build()
)


def driver() -> Driver:
    return Driver(WorkflowRegistry([DOCS]))


def test_for_each_schedules_one_task_per_item_with_deterministic_ids() -> None:
    d = driver()
    events = d.request("docs", input={"sections": ["intro", "usage", "faq"]})
    assert summary(events) == ["WorkflowStarted"] + ["StepScheduled write"] * 3
    scheduled = [e for e in events if isinstance(e, StepScheduled)]
    assert [e.task_id for e in scheduled] == [
        "wf-1/write/1/0/1",
        "wf-1/write/1/1/1",
        "wf-1/write/1/2/1",
    ]
    assert [e.input for e in scheduled] == [
        {"s": "intro", "i": 0},
        {"s": "usage", "i": 1},
        {"s": "faq", "i": 2},
    ]


def test_the_join_completes_the_step_with_outputs_in_item_order() -> None:
    d = driver()
    d.request("docs", input={"sections": ["intro", "usage", "faq"]})
    assert summary(d.complete("write", "U", item=1)) == ["StepCompleted write"]
    assert summary(d.complete("write", "F", item=2)) == ["StepCompleted write"]
    assert d.current.steps["write"].status is StepStatus.RUNNING
    events = d.complete("write", "I", item=0)
    assert summary(events) == ["StepCompleted write", "StepCompleted write", "StepScheduled merge"]
    join = events[1]
    assert isinstance(join, StepCompleted)
    assert (join.task_id, join.attempt, join.output) == ("wf-1/write/1/join", 0, ["I", "U", "F"])
    assert d.task("merge").scheduled.input == ["I", "U", "F"]
    assert summary(d.complete("merge", "doc")) == ["StepCompleted merge", "WorkflowSucceeded"]


def test_an_empty_list_joins_at_once() -> None:
    d = driver()
    events = d.request("docs", input={"sections": []})
    assert summary(events) == ["WorkflowStarted", "StepCompleted write", "StepScheduled merge"]
    assert d.current.steps["write"].output == []


def test_a_for_each_that_is_not_a_list_fails_the_workflow() -> None:
    d = driver()
    events = d.request("docs", input={"sections": "intro"})
    assert summary(events) == ["WorkflowStarted", "WorkflowFailed write"]
    assert d.current.error is not None
    assert "gave str, not a list" in d.current.error.message
    d2 = driver()
    d2.request("docs", input={})
    assert d2.current.error is not None
    assert "gave null, not a list" in d2.current.error.message


def test_items_retry_independently() -> None:
    d = driver()
    d.request("docs", input={"sections": ["a", "b"]})
    assert summary(d.fail("write", item=1)) == ["StepFailed write", "StepRetryScheduled write"]
    d.complete("write", "A", item=0)
    assert summary(d.fire()) == ["StepScheduled write"]
    assert d.task("write", 1).task_id == "wf-1/write/1/1/2"
    assert d.task("write", 1).scheduled.input == {"s": "b", "i": 1}
    events = d.complete("write", "B", item=1)
    assert summary(events) == ["StepCompleted write", "StepCompleted write", "StepScheduled merge"]
    assert d.current.steps["write"].output == ["A", "B"]


def test_a_failed_item_fails_the_workflow_and_leaves_the_others_to_cancel() -> None:
    d = driver()
    d.request("docs", input={"sections": ["a", "b", "c"]})
    events = d.fail("write", item=1, retryable=False, kind="bad_input")
    assert summary(events) == ["StepFailed write", "WorkflowFailed write"]
    assert d.current.status is WorkflowStatus.FAILED
    assert d.current.steps["write"].status is StepStatus.FAILED
    assert d.current.error is not None
    assert d.current.error.error_kind == "bad_input"


def test_continue_on_failure_joins_with_null_for_failed_items() -> None:
    spec = (
        workflow("tolerant")
        .step("each", agent="k", for_each="input", continue_on_failure=True)
        .step(
            "after",
            agent="k",
            after="each",
            input={
                "outputs": "${steps.each.output}",
                "status": "${steps.each.status}",
            },
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("tolerant", input=[1, 2])
    assert summary(d.fail("each", item=0, retryable=False)) == ["StepFailed each"]
    events = d.complete("each", "two", item=1)
    assert summary(events) == ["StepCompleted each", "StepCompleted each", "StepScheduled after"]
    assert d.task("after").scheduled.input == {"outputs": [None, "two"], "status": "failed"}
