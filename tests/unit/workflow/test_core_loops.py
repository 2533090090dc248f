"""Bounded loops: repeat back to an earlier step while a condition holds."""

from __future__ import annotations

from agentlog.schemas.events import StepScheduled
from agentlog.workflow import StepStatus, WorkflowRegistry, WorkflowStatus, repeat, workflow

from .harness import Driver, summary

HEAL = (
    workflow("heal", output={"rounds": "${steps.verify.iteration}", "fix": "${steps.fix.output}"})
    .step("detect", agent="detector")
    .step(
        "fix",
        agent="fixer",
        after="detect",
        input={
            "round": "${iteration}",
            "previous": "${steps.verify.output}",
        },
    )
    .step(
        "verify",
        agent="verifier",
        after="fix",
        repeat=repeat("fix", while_="steps.verify.output.broken", max_iterations=3),
    )
    .step("report", agent="reporter", after="verify", input="${steps.verify.output}")
    .build()
)


def driver() -> Driver:
    d = Driver(WorkflowRegistry([HEAL]))
    d.request("heal")
    d.complete("detect", "incident")
    return d


def test_the_loop_repeats_while_the_condition_holds() -> None:
    d = driver()
    d.complete("fix", "fix-1")
    events = d.complete("verify", {"broken": True})
    assert summary(events) == ["StepCompleted verify", "StepScheduled fix"]
    restart = events[1]
    assert isinstance(restart, StepScheduled)
    assert restart.task_id == "wf-1/fix/2/0/1"  # run 2 of the step
    assert restart.input == {"round": 2, "previous": {"broken": True}}
    steps = d.current.steps
    assert (steps["fix"].run, steps["fix"].status) == (2, StepStatus.RUNNING)
    assert (steps["verify"].run, steps["verify"].status) == (2, StepStatus.PENDING)
    assert steps["verify"].output == {"broken": True}  # the previous round's, until this one ends
    assert steps["detect"].run == 1


def test_the_loop_exits_early_when_the_condition_is_false() -> None:
    d = driver()
    d.complete("fix", "fix-1")
    d.complete("verify", {"broken": True})
    d.complete("fix", "fix-2")
    events = d.complete("verify", {"broken": False})
    assert summary(events) == ["StepCompleted verify", "StepScheduled report"]
    assert d.task("report").scheduled.input == {"broken": False}
    assert summary(d.complete("report", "ok")) == ["StepCompleted report", "WorkflowSucceeded"]
    assert d.current.output == {"rounds": 2, "fix": "fix-2"}


def test_the_loop_stops_at_max_iterations_and_continues() -> None:
    d = driver()
    for round_ in (1, 2):
        d.complete("fix", f"fix-{round_}")
        assert summary(d.complete("verify", {"broken": True}))[-1] == "StepScheduled fix"
    d.complete("fix", "fix-3")
    events = d.complete("verify", {"broken": True})
    assert summary(events) == ["StepCompleted verify", "StepScheduled report"]
    assert d.current.steps["verify"].run == 3


def test_a_loop_declared_to_fail_when_exhausted_fails_the_workflow() -> None:
    spec = (
        workflow("strict")
        .step(
            "try_it",
            agent="k",
            repeat=repeat(
                "try_it", while_="!(steps.try_it.output)", max_iterations=2, on_exhausted="fail"
            ),
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("strict")
    assert summary(d.complete("try_it", False)) == ["StepCompleted try_it", "StepScheduled try_it"]
    events = d.complete("try_it", False)
    assert summary(events) == ["StepCompleted try_it", "WorkflowFailed try_it"]
    assert d.current.error is not None
    assert d.current.error.error_kind == "loop_exhausted"
    assert d.current.status is WorkflowStatus.FAILED


def test_a_step_can_loop_on_itself_and_the_last_output_wins() -> None:
    spec = (
        workflow("poll")
        .step(
            "poll",
            agent="poller",
            input="${iteration}",
            repeat=repeat(
                "poll",
                while_="steps.poll.output != 'ready'",
                max_iterations=10,
            ),
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("poll")
    d.complete("poll", "wait")
    d.complete("poll", "wait")
    assert d.task("poll").scheduled.input == 3
    assert summary(d.complete("poll", "ready")) == ["StepCompleted poll", "WorkflowSucceeded"]
    assert d.current.output == {"poll": "ready"}


def test_a_skipped_step_in_the_next_round_restarts_the_loop_too() -> None:
    spec = (
        workflow("alternate")
        .step("odd", agent="k", when="iteration != `2`")
        .step(
            "end", agent="k", after="odd", repeat=repeat("odd", while_="`true`", max_iterations=3)
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("alternate")
    d.complete("odd", 1)
    events = d.complete("end", "e1")
    assert summary(events) == ["StepCompleted end", "StepCompleted odd", "StepScheduled end"]
    assert d.current.steps["odd"].status is StepStatus.SKIPPED
    assert d.current.steps["odd"].run == 2
    assert summary(d.complete("end", "e2")) == ["StepCompleted end", "StepScheduled odd"]
    d.complete("odd", 3)
    assert summary(d.complete("end", "e3"))[-1] == "WorkflowSucceeded"


def test_a_fan_out_inside_a_loop_gets_fresh_item_ids_each_round() -> None:
    spec = (
        workflow("rounds")
        .step("each", agent="k", for_each="input")
        .step(
            "check",
            agent="k",
            after="each",
            repeat=repeat("each", while_="steps.check.output", max_iterations=2),
        )
        .build()
    )
    d = Driver(WorkflowRegistry([spec]))
    d.request("rounds", input=["x", "y"])
    d.complete("each", 1, item=0)
    d.complete("each", 2, item=1)
    events = d.complete("check", True)
    assert summary(events) == ["StepCompleted check", "StepScheduled each", "StepScheduled each"]
    assert [e.task_id for e in events if isinstance(e, StepScheduled)] == [
        "wf-1/each/2/0/1",
        "wf-1/each/2/1/1",
    ]
    assert d.current.steps["each"].output == [1, 2]
