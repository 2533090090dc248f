"""The five demo workflows, as definitions with example inputs.

``agentlog dev`` registers them and runs them against the demo agents; the unit
tests drive each one through the pure core with fake agents.
"""

from __future__ import annotations

from agentlog.schemas.events import JsonObject
from agentlog.workflow.builder import lock, repeat, workflow
from agentlog.workflow.registry import WorkflowRegistry
from agentlog.workflow.spec import RetryPolicy, WorkflowSpec

_PR: JsonObject = {"repo": "${input.repo}", "pr": "${input.pr}"}

PR_DEPLOY: WorkflowSpec = (
    workflow(
        "pr-deploy",
        version=1,
        description=(
            "Review a pull request, run its tests, deploy it. Deploys of one "
            "repository are serialised by a lock on repo:<repo>."
        ),
        timeout_ms=3_600_000,
        required_input=("repo", "pr"),
        example_input={"repo": "acme/shop", "pr": 42, "environment": "staging"},
        output={
            "approved": "${steps.review.output.approved}",
            "tests_passed": "${steps.tests.output.passed}",
            "deployment": "${steps.deploy.output}",
        },
    )
    .step("review", agent="reviewer", input=_PR, timeout_ms=600_000)
    .step(
        "tests",
        agent="tester",
        after="review",
        when="steps.review.output.approved",
        input=_PR,
        timeout_ms=900_000,
        # a red test suite is an answer, not an outage: do not run it again
        retry=RetryPolicy(max_attempts=3, non_retryable=("test_failure",)),
    )
    .step(
        "deploy",
        agent="deployer",
        after="tests",
        when="steps.tests.output.passed",
        input={**_PR, "environment": "${input.environment || 'staging'}"},
        timeout_ms=600_000,
        retry=RetryPolicy(max_attempts=2),
        locks=[lock("repo:${input.repo}", ttl_ms=600_000, wait_ms=300_000)],
    )
    .build()
)

PARALLEL_DOCS: WorkflowSpec = (
    workflow(
        "parallel-docs",
        version=1,
        description="One writer agent per section, in parallel, then an aggregator.",
        required_input=("title", "sections"),
        example_input={
            "title": "agentlog user guide",
            "sections": ["Install", "Quickstart", "Workflows", "Operations"],
        },
        output={
            "document": "${steps.aggregate.output.document}",
            "sections": "${length(steps.write.output)}",
        },
    )
    .step(
        "write",
        agent="writer",
        for_each="input.sections",
        input={"title": "${input.title}", "section": "${item}", "position": "${index}"},
        timeout_ms=300_000,
    )
    .step(
        "aggregate",
        agent="aggregator",
        after="write",
        input={"title": "${input.title}", "sections": "${steps.write.output}"},
    )
    .build()
)

SELF_HEALING: WorkflowSpec = (
    workflow(
        "self-healing",
        version=1,
        description=(
            "Detect an incident, then diagnose, fix and verify until the "
            "verifier finds no issue, at most 5 rounds."
        ),
        required_input=("service",),
        example_input={"service": "checkout", "symptom": "p99 latency above 2 s"},
        output={
            "healed": "${!(steps.verify.output.issues_found)}",
            "rounds": "${steps.verify.iteration}",
            "last_fix": "${steps.fix.output}",
        },
    )
    .step(
        "detect",
        agent="detector",
        input={"service": "${input.service}", "symptom": "${input.symptom}"},
    )
    .step(
        "diagnose",
        agent="diagnoser",
        after="detect",
        # the previous round's verification (null in round 1) says what is still wrong
        input={
            "incident": "${steps.detect.output}",
            "last_verification": "${steps.verify.output}",
            "round": "${iteration}",
        },
    )
    .step("fix", agent="fixer", after="diagnose", input={"diagnosis": "${steps.diagnose.output}"})
    .step(
        "verify",
        agent="verifier",
        after="fix",
        input={"service": "${input.service}", "fix": "${steps.fix.output}"},
        repeat=repeat("diagnose", while_="steps.verify.output.issues_found", max_iterations=5),
    )
    .build()
)

TRIAGE_CHAIN: WorkflowSpec = (
    workflow(
        "triage-chain",
        version=1,
        description="Three agents in a chain: triage a ticket, gather data, propose optimisations.",
        required_input=("ticket",),
        example_input={
            "ticket": {
                "id": "T-1042",
                "customer": "globex",
                "text": "Nightly export takes 4 hours since last week",
            }
        },
        output="${steps.optimization.output}",
    )
    .step("triage", agent="triager", input={"ticket": "${input.ticket}"})
    .step(
        "data",
        agent="data-analyst",
        after="triage",
        input={
            "category": "${steps.triage.output.category}",
            "customer": "${input.ticket.customer}",
        },
    )
    .step(
        "optimization",
        agent="optimizer",
        after="data",
        input={"triage": "${steps.triage.output}", "data": "${steps.data.output}"},
    )
    .build()
)

_SPECIALISTS = {
    "research": "researcher",
    "code": "coder",
    "security": "security-reviewer",
    "cost": "cost-analyst",
}


def _supervisor() -> WorkflowSpec:
    builder = workflow(
        "supervisor",
        version=1,
        description="A supervisor plans, fans out to 4 specialist agents, and aggregates.",
        required_input=("goal",),
        example_input={"goal": "Cut checkout latency by 30% this quarter"},
        output="${steps.aggregate.output}",
    ).step("plan", agent="supervisor", input={"goal": "${input.goal}"})
    for name, kind in _SPECIALISTS.items():
        builder = builder.step(
            name,
            agent=kind,
            after="plan",
            input={"goal": "${input.goal}", "brief": f"${{steps.plan.output.briefs.{name}}}"},
        )
    return builder.step(
        "aggregate",
        agent="supervisor",
        after=tuple(_SPECIALISTS),
        input={
            "goal": "${input.goal}",
            "reports": {name: f"${{steps.{name}.output}}" for name in _SPECIALISTS},
        },
    ).build()


SUPERVISOR: WorkflowSpec = _supervisor()

DEMOS: tuple[WorkflowSpec, ...] = (PR_DEPLOY, PARALLEL_DOCS, SELF_HEALING, TRIAGE_CHAIN, SUPERVISOR)


def demo_registry() -> WorkflowRegistry:
    """A registry holding the five demo workflows."""
    return WorkflowRegistry(DEMOS)
