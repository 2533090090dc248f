"""The structure of a spec's step graph: order, ancestry and loop bodies.

Pure functions of a spec, computed once per spec (see :class:`Plan`) and
shared by validation and the orchestrator core.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from agentlog.schemas.events import JsonValue
from agentlog.workflow.expr import ExpressionError
from agentlog.workflow.spec import Step, WorkflowSpec
from agentlog.workflow.template import expressions


def find_cycle(steps: Sequence[Step]) -> tuple[str, ...]:
    """A dependency cycle ``(a, b, ..., a)``: a runs after b, ..., after a; or ``()``.

    Unknown ``after`` targets are ignored; validation reports them separately.
    """
    deps = {s.name: s.after for s in steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(name: str) -> tuple[str, ...]:
        state[name] = 1
        path.append(name)
        for dep in deps.get(name, ()):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                return (*path[path.index(dep) :], dep)
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        path.pop()
        state[name] = 2
        return ()

    for step in steps:
        if step.name not in state:
            cycle = visit(step.name)
            if cycle:
                return cycle
    return ()


def topological_order(steps: Sequence[Step]) -> tuple[str, ...]:
    """Step names, dependencies first; ties keep spec order (stable, deterministic).

    Assumes the graph has no cycle and every ``after`` target exists.
    """
    placed: set[str] = set()
    order: list[str] = []
    remaining = list(steps)
    while remaining:
        ready = [s for s in remaining if all(d in placed for d in s.after)]
        if not ready:  # a cycle: validation reports it; keep the rest in spec order
            ready = remaining
        for step in ready:
            order.append(step.name)
            placed.add(step.name)
        remaining = [s for s in remaining if s.name not in placed]
    return tuple(order)


def ancestors_of(steps: Sequence[Step]) -> dict[str, frozenset[str]]:
    """Every step's transitive dependencies (not including itself)."""
    deps = {s.name: tuple(d for d in s.after if d != s.name) for s in steps}
    result: dict[str, frozenset[str]] = {}
    for name in topological_order(steps):
        found: set[str] = set()
        for dep in deps[name]:
            if dep in deps:
                found.add(dep)
                found |= result.get(dep, frozenset())
        result[name] = frozenset(found)
    return result


def loop_body(
    step: str, back_to: str, ancestors: Mapping[str, frozenset[str]], order: Sequence[str]
) -> tuple[str, ...]:
    """The steps a loop re-runs: on some path from ``back_to`` to ``step``, both included."""
    return tuple(
        name
        for name in order
        if name in (back_to, step)
        or (back_to in ancestors.get(name, ()) and name in ancestors.get(step, ()))
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid spec's derived structure, computed once and shared by the core.

    Attributes:
        spec: the spec.
        steps: step by name.
        order: step names, dependencies first.
        ancestors: each step's transitive dependencies.
        loop_of: loop step by the name of its ``back_to`` step.
        body: steps each loop re-runs, by loop step, in order.
        enclosing_loop: the loop step whose body holds a step, by step name.
        sinks: steps no other step depends on, in order.
        signals: names of the signals some step waits for.
        locked: steps that declare locks, in order.
        reads_context: steps that evaluate expressions when they start: a
            ``when``, a ``for_each`` or a ``${...}`` placeholder in their input.
        scan: ``(name, after, fans_out)`` of every step in ``order``: what
            scheduling reads for each step on every input, without a lookup.
    """

    spec: WorkflowSpec
    steps: Mapping[str, Step]
    order: tuple[str, ...]
    ancestors: Mapping[str, frozenset[str]]
    loop_of: Mapping[str, str]
    body: Mapping[str, tuple[str, ...]]
    enclosing_loop: Mapping[str, str]
    sinks: tuple[str, ...]
    signals: frozenset[str]
    locked: tuple[str, ...]
    reads_context: frozenset[str]
    scan: tuple[tuple[str, tuple[str, ...], bool], ...]

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Plan:
        """The plan of a valid spec, memoised by the spec's identity (a bounded LRU).

        Parsing memoises specs (:func:`agentlog.workflow.parse.spec_from_json`),
        so every workflow of one spec shares one plan; deriving it costs ~100 us
        for 10 steps, once per spec instead of once per workflow.
        """
        return _plan_of(_Identity(spec))

    @classmethod
    def derive(cls, spec: WorkflowSpec) -> Plan:
        """Derive the plan of a valid spec (uncached; :meth:`of` memoises it)."""
        order = topological_order(spec.steps)
        ancestors = ancestors_of(spec.steps)
        loop_of: dict[str, str] = {}
        body: dict[str, tuple[str, ...]] = {}
        enclosing: dict[str, str] = {}
        for step in spec.steps:
            if step.repeat is not None:
                loop_of[step.repeat.back_to] = step.name
                body[step.name] = loop_body(step.name, step.repeat.back_to, ancestors, order)
                enclosing.update(dict.fromkeys(body[step.name], step.name))
        depended_on = {dep for step in spec.steps for dep in step.after}
        by_name = {s.name: s for s in spec.steps}
        return cls(
            spec=spec,
            steps=MappingProxyType(by_name),
            order=order,
            ancestors=MappingProxyType(ancestors),
            loop_of=MappingProxyType(loop_of),
            body=MappingProxyType(body),
            enclosing_loop=MappingProxyType(enclosing),
            sinks=tuple(name for name in order if name not in depended_on),
            signals=frozenset(s.signal for s in spec.steps if s.signal is not None),
            locked=tuple(name for name in order if spec.step(name).locks),
            reads_context=frozenset(
                s.name
                for s in spec.steps
                if s.when is not None or s.for_each is not None or _has_placeholder(s.input)
            ),
            scan=tuple(
                (name, tuple(by_name[name].after), by_name[name].for_each is not None)
                for name in order
            ),
        )


def _has_placeholder(template: JsonValue) -> bool:
    try:
        return next(expressions(template), None) is not None
    except ExpressionError:
        return True  # rendering will raise it, as it would have without the plan


class _Identity:
    """A spec as a cache key by identity (specs hold dicts: they do not hash)."""

    __slots__ = ("spec",)

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec

    def __hash__(self) -> int:
        return id(self.spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.spec is self.spec


@functools.lru_cache(maxsize=256)
def _plan_of(key: _Identity) -> Plan:
    # the cache holds the key, hence the spec: its id is not reused while cached
    return Plan.derive(key.spec)
