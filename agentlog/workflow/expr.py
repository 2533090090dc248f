"""JMESPath expressions: compiled once, evaluated against a step's context.

Every condition (``when``, ``repeat.while``), fan-out list (``for_each``) and
``${...}`` placeholder is a JMESPath expression. Truthiness follows the
JMESPath specification: ``false``, ``null``, ``""``, ``[]`` and ``{}`` are
false; every number, including 0, is true.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError, ParseError
from jmespath.functions import Functions
from jmespath.parser import ParsedResult

from agentlog.schemas.events import JsonValue

#: The top-level names an expression can read from its context.
CONTEXT_NAMES = ("input", "steps", "item", "index", "iteration", "workflow")


class ExpressionError(ValueError):
    """An expression does not parse, or failed while being evaluated."""


@functools.lru_cache(maxsize=4096)
def compile_expression(text: str) -> ParsedResult:
    """Parse ``text`` once; later calls with the same text reuse the parse.

    Raises:
        ExpressionError: the text is empty or not JMESPath.
    """
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as e:
        raise ExpressionError(f"{text!r} is not a valid JMESPath expression: {_brief(e)}") from e
    unknown = sorted(set(_functions(parsed.parsed)) - _KNOWN_FUNCTIONS)
    if unknown:
        raise ExpressionError(
            f"{text!r} calls unknown function {unknown[0]}(); "
            f"JMESPath has {', '.join(sorted(_KNOWN_FUNCTIONS))}"
        )
    return parsed


_KNOWN_FUNCTIONS = frozenset(Functions().FUNCTION_TABLE)


def _brief(error: JMESPathError) -> str:
    """One line: jmespath's messages draw a caret under the expression on later lines."""
    first = str(error).split("\n", 1)[0].rstrip(":")
    if isinstance(error, ParseError):
        return f"{first} at column {error.lex_position}"
    return first


def _functions(node: Mapping[str, Any]) -> Iterator[str]:
    if node.get("type") == "function_expression":
        yield str(node["value"])
    for child in node.get("children", []):
        yield from _functions(child)


def evaluate(expression: str, context: Mapping[str, Any]) -> JsonValue:
    """Evaluate ``expression`` against ``context`` and return a JSON value.

    Raises:
        ExpressionError: the expression does not parse, fails (e.g. a function
            applied to the wrong type), or yields a non-finite number.
    """
    parsed = compile_expression(expression)
    try:
        value = parsed.search(context)
    except JMESPathError as e:
        raise ExpressionError(f"{expression!r} failed: {_brief(e)}") from e
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{expression!r} gave {value}, which JSON cannot carry")
    result: JsonValue = value
    return result


def truthy(value: JsonValue) -> bool:
    """JMESPath truthiness: false, null, empty string, list and object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def referenced_steps(expression: str) -> frozenset[str]:
    """Names ``X`` the expression reads as ``steps.X`` from the root of its context.

    Best effort: dynamic forms (``steps.*``, ``steps[...]``) are not reported.

    Raises:
        ExpressionError: the expression does not parse.
    """
    parsed = compile_expression(expression)
    return frozenset(_walk(parsed.parsed, at_root=True))


# Node types whose first child is evaluated against the current node and whose
# other children against the first child's result (so not against the root).
_LEFT_SCOPED = frozenset(
    {
        "subexpression",
        "projection",
        "filter_projection",
        "index_expression",
        "value_projection",
        "flatten",
        "pipe",
    }
)
# Node types whose children all see the same current node as the node itself.
_SAME_SCOPE = frozenset(
    {
        "function_expression",
        "and_expression",
        "or_expression",
        "not_expression",
        "comparator",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
    }
)


def _walk(node: Mapping[str, Any], *, at_root: bool) -> Iterator[str]:
    kind = node.get("type")
    children: list[Mapping[str, Any]] = node.get("children", [])
    if kind == "subexpression" and at_root and len(children) >= 2:
        first, second = children[0], children[1]
        reads_steps = first.get("type") == "field" and first.get("value") == "steps"
        if reads_steps and second.get("type") == "field":
            yield str(second["value"])
    if kind in _LEFT_SCOPED:
        for index, child in enumerate(children):
            yield from _walk(child, at_root=at_root and index == 0)
    elif kind in _SAME_SCOPE:
        for child in children:
            yield from _walk(child, at_root=at_root)
    else:
        # expref, literal, field, current, index, slice...: nothing evaluated at the root.
        for child in children:
            yield from _walk(child, at_root=False)
