"""``${...}`` templates: JSON values whose strings may embed JMESPath expressions.

A step's ``input`` mapping, the workflow ``output`` and lock resources are
templates. Rules:

* a string that is exactly ``"${expr}"`` becomes the expression's value, of
  any JSON type (``"${input.files}"`` gives the list itself);
* a string with text around placeholders, ``"PR ${input.pr} of ${input.repo}"``,
  becomes a string: string values are inserted as they are, other values as
  compact JSON (``null``, ``42``, ``{"a":1}``);
* ``$${`` is a literal ``${``;
* objects and lists are templates element by element; object keys are literal.

Expressions see the context ``{input, steps: {name: {status, output,
iteration}}, item, index, iteration, workflow: {id, name, version}}``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agentlog.schemas.events import JsonValue
from agentlog.workflow.expr import ExpressionError, compile_expression, evaluate

_OPEN = "${"
_ESCAPED_OPEN = "$${"
_QUOTES = frozenset("'\"`")


@dataclass(frozen=True, slots=True)
class _Placeholder:
    expression: str


_Part = str | _Placeholder


@functools.lru_cache(maxsize=4096)
def split(text: str) -> tuple[_Part, ...]:
    """Split a template string into literal text and placeholders (memoised: specs repeat).

    Raises:
        ExpressionError: a placeholder is unclosed, empty or not JMESPath.
    """
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(_ESCAPED_OPEN, i):
            literal.append(_OPEN)
            i += len(_ESCAPED_OPEN)
        elif text.startswith(_OPEN, i):
            end = _closing_brace(text, i + len(_OPEN))
            if end < 0:
                raise ExpressionError(f"unclosed '${{' at offset {i} in {text!r}; add '}}'")
            expression = text[i + len(_OPEN) : end].strip()
            compile_expression(expression)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Placeholder(expression))
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing a placeholder; braces inside quotes do not count."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in _QUOTES:
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def expressions(template: JsonValue) -> Iterator[tuple[str, str]]:
    """Every ``(path, expression)`` in a template, e.g. ``("input.repo", "input.repo")``.

    Raises:
        ExpressionError: a string in the template is not a valid template.
    """
    yield from _expressions(template, "")


def _expressions(template: JsonValue, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(template, str):
        for part in split(template):
            if isinstance(part, _Placeholder):
                yield path, part.expression
    elif isinstance(template, list):
        for index, value in enumerate(template):
            yield from _expressions(value, f"{path}[{index}]")
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from _expressions(value, f"{path}.{key}" if path else key)


def render(template: JsonValue, context: Mapping[str, Any]) -> JsonValue:
    """The JSON value of ``template`` in ``context``.

    Raises:
        ExpressionError: a placeholder is invalid or fails to evaluate.
    """
    if isinstance(template, str):
        return _render_string(template, context)
    if isinstance(template, list):
        return [render(value, context) for value in template]
    if isinstance(template, dict):
        return {key: render(value, context) for key, value in template.items()}
    return template


def render_text(template: str, context: Mapping[str, Any]) -> str:
    """Render a template that must produce a string (e.g. a lock resource).

    Raises:
        ExpressionError: a placeholder fails, or a whole-string placeholder is null.
    """
    value = render(template, context)
    if value is None:
        raise ExpressionError(f"{template!r} rendered to null; does the input have that field?")
    return value if isinstance(value, str) else _as_text(value)


def _render_string(text: str, context: Mapping[str, Any]) -> JsonValue:
    if _OPEN not in text:
        return text
    parts = split(text)
    if len(parts) == 1 and isinstance(parts[0], _Placeholder):
        return evaluate(parts[0].expression, context)
    return "".join(
        _as_text(evaluate(part.expression, context)) if isinstance(part, _Placeholder) else part
        for part in parts
    )


def _as_text(value: JsonValue) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
