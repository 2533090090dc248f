"""The plan derived from a spec: memoised per spec object, and what it precomputes."""

from __future__ import annotations

import copy

from agentlog.workflow import WorkflowSpec, workflow
from agentlog.workflow.graph import Plan


def _spec() -> WorkflowSpec:
    return (
        workflow("plan-probe", version=1)
        .step("fixed", agent="x", input={"n": 1, "text": "no placeholder, $${literal}"})
        .step("templated", agent="x", input={"pr": "${input.pr}"}, after=["fixed"])
        .step(
            "nested", agent="x", input={"a": [{"b": "PR ${steps.fixed.output}"}]}, after=["fixed"]
        )
        .step("conditional", agent="x", input={"n": 2}, when="input.go", after=["fixed"])
        .step("fan-out", agent="x", input={"n": 3}, for_each="input.items", after=["fixed"])
        .build()
    )


def test_the_plan_of_one_spec_object_is_derived_once() -> None:
    spec = _spec()
    assert Plan.of(spec) is Plan.of(spec)
    assert Plan.of(spec) == Plan.derive(spec)


def test_equal_spec_objects_get_equal_plans_of_their_own() -> None:
    spec = _spec()
    other = copy.deepcopy(spec)
    assert other == spec
    assert other is not spec
    assert Plan.of(other) is not Plan.of(spec)
    assert Plan.of(other).spec is other
    assert Plan.of(other) == Plan.of(spec)


def test_reads_context_names_the_steps_that_evaluate_expressions_when_they_start() -> None:
    expected = frozenset({"templated", "nested", "conditional", "fan-out"})
    assert Plan.of(_spec()).reads_context == expected


def test_parsing_the_same_json_twice_shares_spec_and_plan() -> None:
    data = _spec().to_json()
    first = WorkflowSpec.from_json(data)
    second = WorkflowSpec.from_json(copy.deepcopy(data))
    assert first is second
    assert Plan.of(first) is Plan.of(second)
