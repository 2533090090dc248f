"""Semantic validation of workflow specs: every problem, with its step and fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping

from agentlog.schemas.events import PRIORITY_MAX, PRIORITY_MIN, JsonValue
from agentlog.workflow.errors import SpecProblem
from agentlog.workflow.expr import ExpressionError, compile_expression, referenced_steps
from agentlog.workflow.graph import ancestors_of, find_cycle, loop_body, topological_order
from agentlog.workflow.parse import json_problem
from agentlog.workflow.spec import LockDecl, RetryPolicy, Step, WorkflowSpec
from agentlog.workflow.template import expressions

WORKFLOW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Step names are JMESPath identifiers (``steps.review``); ``-`` needs quoting there
# (``steps."run-tests"``) but is allowed. ``/`` would make task ids ambiguous.
STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
# The agent kind is the suffix of the topic ``tasks.<kind>``: Kafka's topic alphabet.
AGENT_KIND = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
MAX_LOOP_ITERATIONS = 100
MAX_ATTEMPTS = 100


def validate(spec: WorkflowSpec) -> list[SpecProblem]:
    """Every problem of ``spec``, workflow-level first, then step by step in spec order.

    An empty list means the spec is valid: :func:`agentlog.workflow.graph.Plan.of`
    and the orchestrator core accept it.
    """
    problems = list(_workflow_problems(spec))
    names = [s.name for s in spec.steps]
    known = set(names)
    for step in spec.steps:
        problems.extend(_step_problems(step, known))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    problems.extend(SpecProblem(n, "name", "duplicate step name; rename one") for n in duplicates)
    if duplicates or any(p.field == "after" for p in problems):
        return problems  # the graph checks below need unique names and known targets
    cycle = find_cycle(spec.steps)
    if cycle:
        shown = " after ".join(repr(n) for n in cycle)
        message = f"dependency cycle: {shown}; remove one of these 'after' entries"
        problems.append(SpecProblem(cycle[0], "after", message))
        return problems
    problems.extend(_graph_problems(spec))
    return problems


def _workflow_problems(spec: WorkflowSpec) -> Iterator[SpecProblem]:
    def problem(field: str, message: str) -> SpecProblem:
        return SpecProblem(None, field, message)

    if not WORKFLOW_NAME.fullmatch(spec.name):
        yield problem("name", f"{spec.name!r}: use 1-128 letters, digits, '.', '_' or '-'")
    if spec.version < 1:
        yield problem("version", f"{spec.version}: versions start at 1")
    if not PRIORITY_MIN <= spec.priority <= PRIORITY_MAX:
        yield problem("priority", f"{spec.priority}: use {PRIORITY_MIN} (lowest) to {PRIORITY_MAX}")
    if spec.timeout_ms is not None and spec.timeout_ms <= 0:
        yield problem("timeout_ms", f"{spec.timeout_ms}: use a positive number or null")
    if not spec.steps:
        yield problem("steps", "a workflow needs at least one step")
    for key in spec.required_input:
        if not key:
            yield problem("required_input", "empty key")
    for field, value in (("example_input", spec.example_input), ("output", spec.output)):
        issue = json_problem(value)
        if issue:
            yield problem(field, issue)
    yield from _example_input_problems(spec)
    yield from _output_problems(spec)


def _example_input_problems(spec: WorkflowSpec) -> Iterator[SpecProblem]:
    if spec.example_input is None or not spec.required_input:
        return
    missing = missing_input(spec.required_input, spec.example_input)
    if missing:
        yield SpecProblem(None, "example_input", f"lacks required input {', '.join(missing)}")


def missing_input(required: Iterable[str], value: object) -> list[str]:
    """The required keys that ``value`` (a workflow input) lacks or has as null."""
    if not isinstance(value, dict):
        return list(required)
    return [key for key in required if value.get(key) is None]


def _step_problems(step: Step, known: set[str]) -> Iterator[SpecProblem]:
    def problem(field: str, message: str) -> SpecProblem:
        return SpecProblem(step.name, field, message)

    if not STEP_NAME.fullmatch(step.name):
        yield problem("name", "use 1-64 letters, digits, '_' or '-', starting with a letter or '_'")
    yield from _kind_problems(step)
    seen: set[str] = set()
    for dep in step.after:
        if dep == step.name:
            yield problem("after", "a step cannot run after itself")
        elif dep not in known:
            yield problem("after", f"unknown step {dep!r}{_suggest(dep, known)}")
        elif dep in seen:
            yield problem("after", f"{dep!r} is listed twice")
        seen.add(dep)
    for field, text in (("when", step.when), ("for_each", step.for_each)):
        if text is not None:
            yield from _expression_problems(step.name, field, text)
    if step.timeout_ms is not None and step.timeout_ms <= 0:
        yield problem("timeout_ms", f"{step.timeout_ms}: use a positive number or null")
    yield from _retry_problems(step.name, step.retry)
    yield from _lock_problems(step.name, step.locks)
    yield from _repeat_field_problems(step, known)
    issue = json_problem(step.input)
    if issue:
        yield problem("input", issue)
    else:
        yield from _template_syntax_problems(step.name, "input", step.input)
    for i, lock in enumerate(step.locks):
        yield from _template_syntax_problems(step.name, f"locks[{i}].resource", lock.resource)


def _kind_problems(step: Step) -> Iterator[SpecProblem]:
    def problem(field: str, message: str) -> SpecProblem:
        return SpecProblem(step.name, field, message)

    if step.agent is None and step.signal is None:
        yield problem(
            "agent", "missing agent kind; set agent, or signal for a wait-for-signal step"
        )
    elif step.agent is not None and step.signal is not None:
        yield problem("signal", "a step runs an agent or waits for a signal, not both")
    if step.agent is not None and not AGENT_KIND.fullmatch(step.agent):
        yield problem("agent", f"{step.agent!r}: use 1-200 letters, digits, '.', '_' or '-'")
    if step.signal is not None:
        if not step.signal or len(step.signal) > 200:
            yield problem("signal", "use a name of 1-200 characters")
        if step.for_each is not None:
            yield problem("for_each", "a signal step cannot fan out; remove for_each")
        if step.locks:
            yield problem("locks", "a signal step holds no locks; remove locks")


def _expression_problems(step: str | None, field: str, text: str) -> Iterator[SpecProblem]:
    try:
        compile_expression(text)
    except ExpressionError as e:
        yield SpecProblem(step, field, str(e))


def _retry_problems(step: str, retry: RetryPolicy) -> Iterator[SpecProblem]:
    checks = (
        ("max_attempts", 1 <= retry.max_attempts <= MAX_ATTEMPTS, f"1-{MAX_ATTEMPTS}"),
        ("initial_backoff_ms", retry.initial_backoff_ms >= 0, ">= 0"),
        ("multiplier", retry.multiplier >= 1.0, ">= 1"),
        ("max_backoff_ms", retry.max_backoff_ms >= retry.initial_backoff_ms, ">= initial_backoff"),
        ("jitter", 0.0 <= retry.jitter <= 1.0, "0.0-1.0"),
    )
    for field, ok, expected in checks:
        if not ok:
            value = getattr(retry, field)
            yield SpecProblem(step, f"retry.{field}", f"{value} is out of range; use {expected}")
    if any(not kind for kind in retry.non_retryable):
        yield SpecProblem(step, "retry.non_retryable", "empty error kind")


def _lock_problems(step: str, locks: tuple[LockDecl, ...]) -> Iterator[SpecProblem]:
    resources = [lock.resource for lock in locks]
    for i, lock in enumerate(locks):
        where = f"locks[{i}]"
        if not lock.resource.strip():
            yield SpecProblem(step, f"{where}.resource", "empty resource")
        elif resources.index(lock.resource) != i:
            yield SpecProblem(step, f"{where}.resource", f"{lock.resource!r} is declared twice")
        if lock.ttl_ms <= 0:
            yield SpecProblem(step, f"{where}.ttl_ms", f"{lock.ttl_ms}: use a positive number")
        if lock.wait_ms < 0:
            yield SpecProblem(step, f"{where}.wait_ms", f"{lock.wait_ms}: use 0 or more")


def _repeat_field_problems(step: Step, known: set[str]) -> Iterator[SpecProblem]:
    if step.repeat is None:
        return
    repeat = step.repeat
    if repeat.back_to not in known:
        yield SpecProblem(
            step.name,
            "repeat.back_to",
            f"unknown loop target {repeat.back_to!r}{_suggest(repeat.back_to, known)}",
        )
    if not 1 <= repeat.max_iterations <= MAX_LOOP_ITERATIONS:
        yield SpecProblem(
            step.name,
            "repeat.max_iterations",
            f"{repeat.max_iterations} is out of range; use 1-{MAX_LOOP_ITERATIONS}",
        )
    if repeat.on_exhausted not in ("continue", "fail"):
        yield SpecProblem(step.name, "repeat.on_exhausted", 'use "continue" or "fail"')
    yield from _expression_problems(step.name, "repeat.while", repeat.while_)


def _graph_problems(spec: WorkflowSpec) -> Iterator[SpecProblem]:
    order = topological_order(spec.steps)
    ancestors = ancestors_of(spec.steps)
    bodies: dict[str, tuple[str, ...]] = {}
    for step in spec.steps:
        repeat = step.repeat
        if repeat is None or repeat.back_to not in ancestors:
            continue
        if repeat.back_to != step.name and repeat.back_to not in ancestors[step.name]:
            yield SpecProblem(
                step.name,
                "repeat.back_to",
                f"loop target {repeat.back_to!r} does not run before this step; "
                f"use this step or one it runs after",
            )
            continue
        bodies[step.name] = loop_body(step.name, repeat.back_to, ancestors, order)
    yield from _loop_structure_problems(spec, bodies, ancestors)
    for step in spec.steps:
        yield from _reference_problems(step, ancestors, bodies)


def _loop_structure_problems(
    spec: WorkflowSpec,
    bodies: Mapping[str, tuple[str, ...]],
    ancestors: Mapping[str, frozenset[str]],
) -> Iterator[SpecProblem]:
    loops = list(bodies)
    for i, loop in enumerate(loops):
        for other in loops[i + 1 :]:
            shared = sorted(set(bodies[loop]) & set(bodies[other]))
            if shared:
                yield SpecProblem(
                    other,
                    "repeat",
                    f"loop overlaps the loop of step {loop!r} at {', '.join(shared)}; "
                    f"loops cannot share or nest steps",
                )
    for loop, body in bodies.items():
        for step in spec.steps:
            if step.name in body or loop in ancestors[step.name]:
                continue
            inside = sorted(set(body) & ancestors[step.name])
            if inside:
                yield SpecProblem(
                    step.name,
                    "after",
                    f"runs after {', '.join(inside)} inside the loop of step {loop!r} "
                    f"but not after {loop!r}, so it would run mid-loop; add {loop!r} to after",
                )


def _reference_problems(
    step: Step, ancestors: Mapping[str, frozenset[str]], bodies: Mapping[str, tuple[str, ...]]
) -> Iterator[SpecProblem]:
    allowed = set(ancestors[step.name])
    for body in bodies.values():
        if step.name in body:
            # Inside a loop, a step may read the previous round's output of itself
            # and of the loop steps that run after it (null in the first round).
            allowed |= {n for n in body if n == step.name or step.name in ancestors[n]}
    known = set(ancestors)
    found = [(f"input.{path}" if path else "input", e) for path, e in _safe(step.input)]
    for i, lock in enumerate(step.locks):
        found += [(f"locks[{i}].resource", e) for _, e in _safe(lock.resource)]
    found += [(field, e) for field, e in (("when", step.when), ("for_each", step.for_each)) if e]
    for field, expression in found:
        yield from _read_problems(step.name, field, expression, allowed, known)
    if step.repeat is not None:
        own = allowed | {step.name}
        yield from _read_problems(step.name, "repeat.while", step.repeat.while_, own, known)


def _output_problems(spec: WorkflowSpec) -> Iterator[SpecProblem]:
    known = {s.name for s in spec.steps}
    try:
        found = list(expressions(spec.output))
    except ExpressionError as e:
        yield SpecProblem(None, "output", str(e))
        return
    for path, expression in found:
        field = f"output.{path}" if path else "output"
        yield from _read_problems(None, field, expression, known, known)


def _template_syntax_problems(step: str, field: str, template: JsonValue) -> Iterator[SpecProblem]:
    try:
        list(expressions(template))
    except ExpressionError as e:
        yield SpecProblem(step, field, str(e))


def _safe(template: JsonValue) -> list[tuple[str, str]]:
    """The template's expressions; syntax errors are reported by the step checks."""
    try:
        return list(expressions(template))
    except ExpressionError:
        return []


def _read_problems(
    step: str | None, field: str, expression: str, allowed: set[str], known: set[str]
) -> Iterator[SpecProblem]:
    try:
        names = referenced_steps(expression)
    except ExpressionError:
        return  # reported by the step checks
    for name in sorted(names - allowed):
        if name not in known:
            message = f"reads steps.{name}, an unknown step{_suggest(name, known)}"
        else:
            message = (
                f"reads steps.{name} but {name!r} does not run before this step; add it to after"
            )
        yield SpecProblem(step, field, message)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
