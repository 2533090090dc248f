"""Specs as data: JSON round trips, strict reading, validation messages, builder, registry."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from agentlog.errors import AgentlogError
from agentlog.schemas.events import JsonValue
from agentlog.workflow import (
    LockDecl,
    Repeat,
    RetryPolicy,
    SpecError,
    Step,
    UnknownDefinitionError,
    WorkflowBuilder,
    WorkflowRegistry,
    WorkflowSpec,
    lock,
    repeat,
    validate,
    workflow,
)
from agentlog.workflow.demos import DEMOS, PR_DEPLOY

MINIMAL: dict[str, Any] = {"name": "hello", "steps": [{"name": "greet", "agent": "greeter"}]}


def problems(spec: WorkflowSpec) -> list[str]:
    return [str(p) for p in validate(spec)]


def spec_of(*steps: Step, **fields: Any) -> WorkflowSpec:
    return WorkflowSpec(name=fields.pop("name", "wf"), steps=steps, **fields)


# --- JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", DEMOS, ids=lambda s: s.name)
def test_demo_specs_round_trip_through_json_exactly(spec: WorkflowSpec) -> None:
    data = spec.to_json()
    assert WorkflowSpec.from_json(data) == spec
    assert WorkflowSpec.from_json(json.dumps(data)).to_json() == data
    assert json.loads(json.dumps(data)) == data


def test_minimal_json_gets_defaults_and_canonical_form_lists_every_field() -> None:
    spec = WorkflowSpec.from_json(MINIMAL)
    assert spec == WorkflowSpec(name="hello", steps=(Step(name="greet", agent="greeter"),))
    canonical = spec.to_json()
    assert canonical["format"] == 1
    assert canonical["steps"][0]["retry"] == RetryPolicy().to_json()  # type: ignore[index,call-overload]
    assert WorkflowSpec.from_json(canonical) == spec


def test_every_field_round_trips() -> None:
    spec = spec_of(
        Step(name="a", agent="k", input={"x": ["${input.x}", 1, None, True, 2.5]}, timeout_ms=5),
        Step(
            name="b",
            agent="k",
            after=("a",),
            for_each="input.items",
            when="input.go",
            retry=RetryPolicy(max_attempts=5, multiplier=1.5, jitter=0.0, non_retryable=("x",)),
            locks=(LockDecl(resource="r:${input.x}", ttl_ms=10, wait_ms=0),),
            continue_on_failure=True,
            repeat=Repeat(back_to="a", while_="`false`", max_iterations=3, on_exhausted="fail"),
        ),
        Step(name="c", signal="approve", after=("b",)),
        description="d",
        version=7,
        priority=5,
        timeout_ms=1000,
        example_input={"x": 1, "items": [], "go": True},
        output={"b": "${steps.b.output}"},
        required_input=("x",),
    )
    assert validate(spec) == []
    assert WorkflowSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{not json", "json: not JSON text"),
        ([1], "spec: expected a JSON object, got a list"),
        ({**MINIMAL, "stpes": []}, "stpes: unknown key"),
        ({**MINIMAL, "format": 2}, "format: unsupported spec format 2"),
        ({**MINIMAL, "version": "1"}, "version: expected an integer, got a string '1'"),
        ({**MINIMAL, "priority": True}, "priority: expected an integer 1-5, got a boolean"),
        ({"steps": []}, "name: missing"),
        (
            {"name": "x", "steps": [{"name": "a", "agent": "k", "afterr": []}]},
            "step 'a': afterr: unknown key",
        ),
        (
            {"name": "x", "steps": [{"name": "a", "agent": "k", "retry": {"max_attempts": "3"}}]},
            "step 'a': retry.max_attempts: expected int",
        ),
        (
            {"name": "x", "steps": [{"name": "a", "agent": "k", "locks": [{"ttl_ms": 1}]}]},
            "step 'a': locks[0].resource: missing",
        ),
        (
            {"name": "x", "steps": [{"name": "a", "agent": "k", "repeat": {"back_to": "a"}}]},
            "step 'a': repeat.while: missing",
        ),
        ({"name": "x", "steps": [{"name": "a", "agent": "k", "after": "b"}]}, "expected a list"),
    ],
)
def test_from_json_rejects_malformed_specs_naming_the_field(data: Any, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.from_json(data)
    assert expected in str(caught.value)
    assert isinstance(caught.value, AgentlogError)


def test_from_json_runs_semantic_validation_too() -> None:
    data: JsonValue = {"name": "x", "steps": [{"name": "a", "agent": "k", "after": ["nope"]}]}
    with pytest.raises(SpecError, match=r"step 'a': after: unknown step 'nope'") as caught:
        WorkflowSpec.from_json(data)
    assert caught.value.workflow == "x"
    assert [p.field for p in caught.value.problems] == ["after"]


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            spec_of(Step(name="a", agent="k"), Step(name="b", agent="k", after=("tset",))),
            "step 'b': after: unknown step 'tset'",
        ),
        (
            spec_of(Step(name="test", agent="k"), Step(name="b", agent="k", after=("tset",))),
            "(did you mean 'test'?)",
        ),
        (
            spec_of(
                Step(name="a", agent="k", after=("c",)),
                Step(name="b", agent="k", after=("a",)),
                Step(name="c", agent="k", after=("b",)),
            ),
            "step 'a': after: dependency cycle: 'a' after 'c' after 'b' after 'a'",
        ),
        (spec_of(Step(name="a", agent="k", after=("a",))), "cannot run after itself"),
        (
            spec_of(Step(name="a", agent="k"), Step(name="a", agent="j")),
            "step 'a': name: duplicate",
        ),
        (spec_of(Step(name="a", agent="k", when="a ==")), "step 'a': when: 'a ==' is not a valid"),
        (spec_of(Step(name="a", agent="k", for_each="nope(x)")), "calls unknown function nope()"),
        (spec_of(Step(name="a", agent="k", input="${input.x")), "step 'a': input: unclosed '${'"),
        (spec_of(Step(name="a", agent="k", input={"x": "${}"})), "step 'a': input: empty"),
        (spec_of(Step(name="a")), "step 'a': agent: missing agent kind"),
        (spec_of(Step(name="a", agent="k", signal="s")), "not both"),
        (spec_of(Step(name="a", agent="bad kind")), "step 'a': agent: 'bad kind'"),
        (spec_of(Step(name="a.b", agent="k")), "step 'a.b': name:"),
        (spec_of(Step(name="a", signal="s", for_each="input.x")), "signal step cannot fan out"),
        (spec_of(Step(name="a", agent="k"), priority=0), "priority: 0: use 1 (lowest) to 5"),
        (spec_of(Step(name="a", agent="k"), priority=6), "priority: 6"),
        (spec_of(Step(name="a", agent="k"), name="bad name"), "name: 'bad name'"),
        (spec_of(Step(name="a", agent="k"), version=0), "version: 0"),
        (spec_of(Step(name="a", agent="k"), timeout_ms=0), "timeout_ms: 0"),
        (spec_of(), "steps: a workflow needs at least one step"),
        (spec_of(Step(name="a", agent="k", timeout_ms=-1)), "step 'a': timeout_ms: -1"),
        (
            spec_of(Step(name="a", agent="k", retry=RetryPolicy(max_attempts=0))),
            "step 'a': retry.max_attempts: 0 is out of range",
        ),
        (
            spec_of(Step(name="a", agent="k", retry=RetryPolicy(jitter=1.5))),
            "retry.jitter: 1.5 is out of range",
        ),
        (
            spec_of(Step(name="a", agent="k", retry=RetryPolicy(multiplier=0.5))),
            "retry.multiplier",
        ),
        (
            spec_of(
                Step(name="a", agent="k", repeat=Repeat(back_to="z", while_="x", max_iterations=2))
            ),
            "step 'a': repeat.back_to: unknown loop target 'z'",
        ),
        (
            spec_of(
                Step(name="a", agent="k"),
                Step(name="b", agent="k"),
                Step(
                    name="c",
                    agent="k",
                    after=("a",),
                    repeat=Repeat(back_to="b", while_="x", max_iterations=2),
                ),
            ),
            "step 'c': repeat.back_to: loop target 'b' does not run before this step",
        ),
        (
            spec_of(
                Step(name="a", agent="k", repeat=Repeat(back_to="a", while_="x", max_iterations=0))
            ),
            "step 'a': repeat.max_iterations: 0 is out of range; use 1-100",
        ),
        (
            spec_of(
                Step(
                    name="a", agent="k", repeat=Repeat(back_to="a", while_="x", max_iterations=101)
                )
            ),
            "repeat.max_iterations: 101 is out of range",
        ),
        (
            spec_of(
                Step(name="a", agent="k", repeat=Repeat(back_to="a", while_="[", max_iterations=2))
            ),
            "step 'a': repeat.while: '[' is not a valid JMESPath expression",
        ),
        (
            spec_of(
                Step(name="a", agent="k"),
                Step(name="b", agent="k", input="${steps.c.output}"),
                Step(name="c", agent="k", after=("a",)),
            ),
            "step 'b': input: reads steps.c but 'c' does not run before this step",
        ),
        (
            spec_of(Step(name="a", agent="k", when="steps.zz.output")),
            "step 'a': when: reads steps.zz, an unknown step",
        ),
        (
            spec_of(Step(name="a", agent="k"), output={"x": "${steps.b.output}"}),
            "output.x: reads steps.b, an unknown step",
        ),
        (
            spec_of(
                Step(name="a", agent="k"),
                Step(
                    name="b",
                    agent="k",
                    after=("a",),
                    repeat=Repeat(back_to="a", while_="x", max_iterations=2),
                ),
                Step(name="side", agent="k", after=("a",)),
            ),
            "step 'side': after: runs after a inside the loop of step 'b' but not after 'b'",
        ),
        (
            spec_of(
                Step(name="a", agent="k"),
                Step(
                    name="b",
                    agent="k",
                    after=("a",),
                    repeat=Repeat(back_to="a", while_="x", max_iterations=2),
                ),
                Step(
                    name="c",
                    agent="k",
                    after=("b",),
                    repeat=Repeat(back_to="a", while_="x", max_iterations=2),
                ),
            ),
            "step 'c': repeat: loop overlaps the loop of step 'b'",
        ),
        (
            spec_of(Step(name="a", agent="k", locks=(LockDecl(resource="r:${input.x"),))),
            "step 'a': locks[0].resource: unclosed",
        ),
        (
            spec_of(Step(name="a", agent="k", locks=(LockDecl(resource="r", ttl_ms=0),))),
            "step 'a': locks[0].ttl_ms: 0",
        ),
        (
            spec_of(
                Step(name="a", agent="k", locks=(LockDecl(resource="r"), LockDecl(resource="r")))
            ),
            "locks[1].resource: 'r' is declared twice",
        ),
        (
            spec_of(Step(name="a", agent="k"), required_input=("x",), example_input={"y": 1}),
            "example_input: lacks required input x",
        ),
        (spec_of(Step(name="a", agent="k", input={"x": (1, 2)})), "not a JSON value"),  # type: ignore[dict-item]
    ],
)
def test_validate_names_the_step_and_the_problem(spec: WorkflowSpec, expected: str) -> None:
    found = problems(spec)
    assert any(expected in p for p in found), found
    with pytest.raises(SpecError) as caught:
        workflow(spec.name).build() if not spec.steps else _builder_of(spec).build()
    assert expected in str(caught.value)


def _builder_of(spec: WorkflowSpec) -> WorkflowBuilder:
    return WorkflowBuilder(spec)


def test_from_json_reports_semantic_problems_of_hand_written_json() -> None:
    data = spec_of(Step(name="a", agent="k", when="steps.zz.output")).to_json()
    with pytest.raises(SpecError, match=r"step 'a': when: reads steps.zz, an unknown step"):
        WorkflowSpec.from_json(data)


def test_loop_body_steps_may_read_later_steps_of_the_previous_round() -> None:
    spec = spec_of(
        Step(name="a", agent="k"),
        Step(name="b", agent="k", after=("a",), input={"last": "${steps.c.output}"}),
        Step(
            name="c",
            agent="k",
            after=("b",),
            input="${steps.c.output}",
            repeat=Repeat(back_to="b", while_="steps.c.output.again", max_iterations=3),
        ),
        Step(name="d", agent="k", after=("c",)),
    )
    assert problems(spec) == []


def test_expressions_inside_projections_do_not_count_as_step_reads() -> None:
    spec = spec_of(Step(name="a", agent="k", input="${input.items[*].steps.nope}"))
    assert problems(spec) == []


def test_valid_demo_specs_have_no_problems() -> None:
    for spec in DEMOS:
        assert problems(spec) == [], spec.name


# --- builder ------------------------------------------------------------------------


def test_builder_builds_a_validated_spec() -> None:
    spec = (
        workflow("pr", version=2, priority=4, example_input={"repo": "r"})
        .step("review", agent="reviewer", input={"repo": "${input.repo}"})
        .step("tests", agent="tester", after="review")
        .step("deploy", agent="deployer", after=["tests"], locks=[lock("repo:${input.repo}")])
        .step(
            "again", agent="k", after="deploy", repeat=repeat("again", while_="x", max_iterations=2)
        )
        .build()
    )
    assert spec.version == 2
    assert spec.step("tests").after == ("review",)
    assert spec.step("deploy").locks == (LockDecl(resource="repo:${input.repo}"),)
    assert spec.step("again").repeat == Repeat(back_to="again", while_="x", max_iterations=2)


def test_builder_is_immutable() -> None:
    base = workflow("w").step("a", agent="k")
    extended = base.step("b", agent="k")
    assert len(base.spec.steps) == 1
    assert len(extended.spec.steps) == 2


def test_builder_build_raises_spec_error_listing_every_problem() -> None:
    builder = workflow("w", priority=9).step("a").step("b", agent="k", after="zzz")
    with pytest.raises(SpecError) as caught:
        builder.build()
    message = str(caught.value)
    assert "priority: 9" in message
    assert "step 'a': agent: missing agent kind" in message
    assert "step 'b': after: unknown step 'zzz'" in message


# --- registry --------------------------------------------------------------------------


def test_registry_looks_up_by_version_and_latest() -> None:
    v1 = workflow("w", example_input={"v": 1}).step("a", agent="k").build()
    v2 = workflow("w", version=2, example_input={"v": 2}).step("a", agent="j").build()
    registry = WorkflowRegistry([v2, v1])
    assert registry.find("w") == v2
    assert registry.latest("w") == v2
    assert registry.find("w", 1) == v1
    assert registry.versions("w") == (1, 2)
    assert registry.example_input("w") == {"v": 2}
    assert registry.example_input("w", 1) == {"v": 1}
    assert registry.names() == ("w",)
    assert list(registry) == [v1, v2]
    assert len(registry) == 2
    assert "w" in registry
    assert registry.find("nope") is None


def test_registry_get_raises_for_unknown_names_and_versions() -> None:
    registry = WorkflowRegistry([PR_DEPLOY])
    with pytest.raises(UnknownDefinitionError, match="unknown workflow definition 'nope'"):
        registry.get("nope")
    with pytest.raises(UnknownDefinitionError, match="has no version 9; registered versions: 1"):
        registry.get("pr-deploy", 9)


def test_registry_refuses_a_different_spec_under_a_registered_version() -> None:
    registry = WorkflowRegistry([PR_DEPLOY])
    registry.register(PR_DEPLOY)  # the same spec again is fine
    changed = workflow("pr-deploy").step("a", agent="k").build()
    with pytest.raises(SpecError, match="register the change as version 2"):
        registry.register(changed)


def test_registry_refuses_invalid_specs() -> None:
    with pytest.raises(SpecError, match="missing agent kind"):
        WorkflowRegistry([spec_of(Step(name="a"))])


def _cached_spec_json() -> dict[str, Any]:
    spec: dict[str, Any] = (
        workflow("cache-probe", version=1)
        .step("a", agent="x", input={"k": None, "n": [1, 2.5]})
        .build()
        .to_json()
    )
    return spec


def test_parses_are_memoised_by_value_whatever_the_key_order() -> None:
    first = WorkflowSpec.from_json(_cached_spec_json())
    reordered = dict(reversed(list(_cached_spec_json().items())))
    assert WorkflowSpec.from_json(reordered) is first
    assert WorkflowSpec.from_json(json.dumps(_cached_spec_json())) is first


def test_a_memoised_spec_shares_nothing_with_the_value_it_was_read_from() -> None:
    data = _cached_spec_json()
    spec = WorkflowSpec.from_json(data)
    data["steps"][0]["input"]["k"] = "changed"
    assert spec.steps[0].input == {"k": None, "n": [1, 2.5]}
    assert WorkflowSpec.from_json(_cached_spec_json()).steps[0].input == {"k": None, "n": [1, 2.5]}


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_not_served_the_memoised_parse_of_null(odd: float) -> None:
    """The memo's key writes NaN and infinities as null; the value itself must still be read."""
    WorkflowSpec.from_json(_cached_spec_json())  # the spec with "k": null, memoised
    data = _cached_spec_json()
    data["steps"][0]["input"]["k"] = odd
    with pytest.raises(SpecError, match=r"input: k is .*, not JSON"):
        WorkflowSpec.from_json(data)


def test_a_tuple_is_not_served_the_memoised_parse_of_a_list() -> None:
    WorkflowSpec.from_json(_cached_spec_json())
    data = _cached_spec_json()
    data["steps"] = tuple(data["steps"])
    with pytest.raises(SpecError, match="steps: expected a list of steps, got tuple"):
        WorkflowSpec.from_json(data)


def test_values_orjson_refuses_are_read_uncached() -> None:
    data = _cached_spec_json()
    data["steps"][0]["input"]["k"] = 2**70  # beyond 64 bits: orjson refuses, JSON allows
    assert WorkflowSpec.from_json(data).steps[0].input == {"k": 2**70, "n": [1, 2.5]}
    data["steps"][0]["input"] = {1: "x"}
    with pytest.raises(SpecError, match="input"):
        WorkflowSpec.from_json(data)
