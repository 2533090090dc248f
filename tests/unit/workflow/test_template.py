"""``${...}`` templates and JMESPath helpers."""

from __future__ import annotations

from typing import Any

import pytest

from agentlog.schemas.events import JsonValue
from agentlog.workflow.expr import ExpressionError, evaluate, referenced_steps, truthy
from agentlog.workflow.template import expressions, render, render_text

CONTEXT: dict[str, Any] = {
    "input": {"repo": "acme/shop", "pr": 42, "files": ["a.py", "b.py"], "none": None},
    "steps": {"review": {"status": "completed", "output": {"verdict": "ok"}, "iteration": 1}},
    "item": "Install",
    "index": 0,
    "iteration": 2,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${input.repo}", "acme/shop"),
        ("${input.pr}", 42),
        ("${input.files}", ["a.py", "b.py"]),
        ("${input.missing}", None),
        ("PR ${input.pr} of ${input.repo}", "PR 42 of acme/shop"),
        ("files: ${input.files}", 'files: ["a.py","b.py"]'),
        ("null: ${input.none}", "null: null"),
        ("literal $${input.repo}", "literal ${input.repo}"),
        ("no placeholders", "no placeholders"),
        ("$ and { } alone", "$ and { } alone"),
        ("${ {r: input.repo} }", {"r": "acme/shop"}),
        ("${input.repo == '}'}", False),
        ("${steps.review.output.verdict}", "ok"),
        ("${item}#${index}@${iteration}", "Install#0@2"),
        (
            {"a": ["${input.pr}", {"b": "${item}"}], "c": 1.5},
            {"a": [42, {"b": "Install"}], "c": 1.5},
        ),
        (None, None),
        (True, True),
    ],
)
def test_render(template: JsonValue, expected: JsonValue) -> None:
    assert render(template, CONTEXT) == expected


def test_render_does_not_touch_object_keys() -> None:
    assert render({"${input.repo}": 1}, CONTEXT) == {"${input.repo}": 1}


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("${input.repo", "unclosed"),
        ("${}", "empty expression"),
        ("${input.[}", "not a valid JMESPath"),
        ("${length(input.pr)}", "failed: In function length()"),
    ],
)
def test_render_errors(template: str, error: str) -> None:
    with pytest.raises(ExpressionError, match=error):
        render(template, CONTEXT)


def test_render_text_stringifies_and_refuses_null() -> None:
    assert render_text("repo:${input.repo}", CONTEXT) == "repo:acme/shop"
    assert render_text("${input.pr}", CONTEXT) == "42"
    with pytest.raises(ExpressionError, match="rendered to null"):
        render_text("${input.missing}", CONTEXT)


def test_expressions_lists_every_placeholder_with_its_path() -> None:
    template: JsonValue = {"a": "${input.x} and ${input.y}", "b": ["${item}"], "c": 1}
    assert list(expressions(template)) == [("a", "input.x"), ("a", "input.y"), ("b[0]", "item")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (0.0, True),
        ("x", True),
        ([0], True),
        ({"a": None}, True),
        (True, True),
    ],
)
def test_truthiness_follows_jmespath(value: JsonValue, expected: bool) -> None:
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps.review.output.verdict", {"review"}),
        ('steps."run-tests".output', {"run-tests"}),
        ("length(steps.a.output) > `2` && steps.b.status == 'done'", {"a", "b"}),
        ("{x: steps.a.output, y: [steps.b.output]}", {"a", "b"}),
        ("steps.a.output[?ok].name", {"a"}),
        ("steps.a.output | steps.b", {"a"}),  # after a pipe, 'steps' is the piped value
        ("input.items[*].steps.x", set()),
        ("steps.*.output", set()),
        ("input.x", set()),
    ],
)
def test_referenced_steps_reads_only_root_level_steps(expression: str, expected: set[str]) -> None:
    assert referenced_steps(expression) == expected


def test_evaluate_refuses_non_finite_numbers() -> None:
    with pytest.raises(ExpressionError, match="JSON cannot carry"):
        evaluate("input.x", {"input": {"x": float("inf")}})
