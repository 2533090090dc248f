"""Each demo, driven through the pure core by fake agents, succeeds with the expected output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentlog.schemas.events import JsonValue, StepScheduled, TaskRequested
from agentlog.workflow import WorkflowSpec, WorkflowStatus
from agentlog.workflow.demos import (
    DEMOS,
    PARALLEL_DOCS,
    PR_DEPLOY,
    SELF_HEALING,
    SUPERVISOR,
    TRIAGE_CHAIN,
    demo_registry,
)

from .harness import Driver, summary


def _supervisor(data: Any) -> JsonValue:
    if "reports" in data:
        return {"goal": data["goal"], "covered": sorted(data["reports"])}
    names = ("research", "code", "security", "cost")
    return {"briefs": {name: f"{name} for {data['goal']}" for name in names}}


#: What each demo agent kind answers: a pure function of the task input.
AGENTS: dict[str, Callable[[Any], JsonValue]] = {
    "reviewer": lambda d: {"approved": True, "comments": [f"LGTM {d['repo']}#{d['pr']}"]},
    "tester": lambda d: {"passed": True, "tests": 128},
    "deployer": lambda d: {
        "url": f"https://{d['environment']}.example.com",
        "version": f"pr-{d['pr']}",
    },
    "writer": lambda d: {"section": d["section"], "text": f"{d['position'] + 1}. {d['section']}"},
    "aggregator": lambda d: {"document": "\n".join(s["text"] for s in d["sections"])},
    "detector": lambda d: {"service": d["service"], "alert": d["symptom"]},
    "diagnoser": lambda d: {"round": d["round"], "cause": f"cause-{d['round']}"},
    "fixer": lambda d: {
        "patch": f"patch-{d['diagnosis']['round']}",
        "round": d["diagnosis"]["round"],
    },
    # healthy from the third round on
    "verifier": lambda d: {"issues_found": d["fix"]["round"] < 3},
    "triager": lambda d: {"category": "performance", "ticket": d["ticket"]["id"]},
    "data-analyst": lambda d: {"customer": d["customer"], "p95_export_minutes": 240},
    "optimizer": lambda d: {
        "ticket": d["triage"]["ticket"],
        "actions": ["add index", "batch writes"],
    },
    "supervisor": _supervisor,
}


def fake_agent(task: TaskRequested) -> JsonValue:
    """The demo agent of the task's kind; specialists of the supervisor echo their brief."""
    agent = AGENTS.get(task.agent_kind)
    if agent is None:
        return {"brief": task.input["brief"], "by": task.agent_kind}  # type: ignore[index,call-overload]
    return agent(task.input)


def run_demo(spec: WorkflowSpec) -> Driver:
    d = Driver(demo_registry(), workflow_id=f"demo-{spec.name}")
    events = d.request(spec.name, input=spec.example_input)
    assert summary(events)[0] == "WorkflowStarted"
    d.run_agents(fake_agent)
    assert d.current.status is WorkflowStatus.SUCCEEDED, d.current.error
    return d


def test_pr_deploy_reviews_tests_and_deploys() -> None:
    d = run_demo(PR_DEPLOY)
    assert d.current.output == {
        "approved": True,
        "tests_passed": True,
        "deployment": {"url": "https://staging.example.com", "version": "pr-42"},
    }
    assert PR_DEPLOY.step("deploy").locks[0].resource == "repo:${input.repo}"


def test_pr_deploy_skips_tests_and_deploy_when_the_review_rejects() -> None:
    def rejecting(task: TaskRequested) -> JsonValue:
        return {"approved": False} if task.agent_kind == "reviewer" else fake_agent(task)

    d = Driver(demo_registry())
    d.request("pr-deploy", input=PR_DEPLOY.example_input)
    d.run_agents(rejecting)
    assert d.current.output == {"approved": False, "tests_passed": None, "deployment": None}


def test_parallel_docs_writes_each_section_then_aggregates_in_order() -> None:
    d = run_demo(PARALLEL_DOCS)
    assert d.current.output == {
        "document": "1. Install\n2. Quickstart\n3. Workflows\n4. Operations",
        "sections": 4,
    }
    assert len(d.current.steps["write"].tasks) == 4


def test_self_healing_loops_until_verify_finds_no_issue() -> None:
    d = run_demo(SELF_HEALING)
    assert d.current.output == {
        "healed": True,
        "rounds": 3,
        "last_fix": {"patch": "patch-3", "round": 3},
    }
    assert d.current.steps["detect"].run == 1


def test_self_healing_gives_up_after_five_rounds() -> None:
    def never_healthy(task: TaskRequested) -> JsonValue:
        return {"issues_found": True} if task.agent_kind == "verifier" else fake_agent(task)

    d = Driver(demo_registry())
    d.request("self-healing", input=SELF_HEALING.example_input)
    d.run_agents(never_healthy)
    assert d.current.status is WorkflowStatus.SUCCEEDED
    assert d.current.output == {
        "healed": False,
        "rounds": 5,
        "last_fix": {"patch": "patch-5", "round": 5},
    }


def test_triage_chain_runs_three_agents_in_order() -> None:
    d = run_demo(TRIAGE_CHAIN)
    assert d.current.output == {"ticket": "T-1042", "actions": ["add index", "batch writes"]}
    kinds = [e.agent_kind for e in d.journal if isinstance(e, StepScheduled)]
    assert kinds == ["triager", "data-analyst", "optimizer"]


def test_supervisor_fans_out_to_four_agents_and_aggregates() -> None:
    d = run_demo(SUPERVISOR)
    assert d.current.output == {
        "goal": "Cut checkout latency by 30% this quarter",
        "covered": ["code", "cost", "research", "security"],
    }
    started = summary(d.journal)
    first_specialist = started.index("StepScheduled research")
    assert started[first_specialist : first_specialist + 4] == [
        "StepScheduled research",
        "StepScheduled code",
        "StepScheduled security",
        "StepScheduled cost",
    ]


@pytest.mark.parametrize("spec", DEMOS, ids=lambda s: s.name)
def test_every_demo_has_an_example_input_that_runs(spec: WorkflowSpec) -> None:
    assert spec.example_input is not None
    assert spec.description
    run_demo(spec)
