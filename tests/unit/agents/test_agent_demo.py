"""The demo agents, driven through the pure orchestrator core, give the demos' expected outputs."""

from __future__ import annotations

import asyncio

import pytest

from agentlog.agents.demo import DEMO_AGENTS, demo_agents
from agentlog.agents.runtime import TaskContext, run_task
from agentlog.schemas.events import JsonValue, TaskRequested
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
from tests.unit.workflow.harness import Driver

BY_KIND = {a.kind: a for a in DEMO_AGENTS}


def real_agent(task: TaskRequested) -> JsonValue:
    """Run the demo agent of the task's kind through the runtime's executor."""
    ctx = TaskContext(task, agent_id="demo-test", progress_sink=_ignore)
    outcome = asyncio.run(run_task(BY_KIND[task.agent_kind].handler, ctx))
    assert outcome.failure is None, outcome.failure
    return outcome.output


async def _ignore(report: object) -> None:
    return None


def run_demo(spec: WorkflowSpec) -> Driver:
    d = Driver(demo_registry(), workflow_id=f"demo-{spec.name}")
    d.request(spec.name, input=spec.example_input)
    d.run_agents(real_agent)
    assert d.current.status is WorkflowStatus.SUCCEEDED, d.current.error
    return d


def test_every_agent_kind_of_the_demos_has_a_demo_agent() -> None:
    used = {step.agent for spec in DEMOS for step in spec.steps if step.agent}
    assert used <= set(BY_KIND), used - set(BY_KIND)
    assert "noop" in BY_KIND


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            PR_DEPLOY,
            {
                "approved": True,
                "tests_passed": True,
                "deployment": {"url": "https://staging.example.com", "version": "pr-42"},
            },
        ),
        (
            PARALLEL_DOCS,
            {"document": "1. Install\n2. Quickstart\n3. Workflows\n4. Operations", "sections": 4},
        ),
        (SELF_HEALING, {"healed": True, "rounds": 3, "last_fix": {"patch": "patch-3", "round": 3}}),
        (TRIAGE_CHAIN, {"ticket": "T-1042", "actions": ["add index", "batch writes"]}),
        (
            SUPERVISOR,
            {
                "goal": "Cut checkout latency by 30% this quarter",
                "covered": ["code", "cost", "research", "security"],
            },
        ),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_each_demo_succeeds_with_its_expected_output(
    spec: WorkflowSpec, expected: JsonValue
) -> None:
    assert run_demo(spec).current.output == expected


async def test_demo_agents_report_usage_and_refuse_bad_input() -> None:
    reviewer = BY_KIND["reviewer"]
    ok = await run_task(reviewer.handler, TaskContext.local({"repo": "a/b", "pr": 1}))
    assert ok.usage.input_tokens > 0
    assert ok.usage.cost_usd > 0
    bad = await run_task(reviewer.handler, TaskContext.local({"nothing": True}))
    assert bad.failure is not None
    assert (bad.failure.kind, bad.failure.retryable) == ("bad_input", False)


async def test_noop_echoes_and_think_time_reports_progress() -> None:
    [noop] = [a for a in demo_agents(think_s=0.01) if a.kind == "noop"]
    ctx = TaskContext.local({"n": 1})
    outcome = await run_task(noop.handler, ctx)
    assert outcome.output == {"n": 1}
    assert [p.message for p in ctx.progress_reports] == ["noop thinking"]
