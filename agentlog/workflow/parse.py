"""Read a workflow spec from JSON, strictly: unknown keys and wrong types are problems."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import TypeVar, cast

import orjson

from agentlog.schemas.events import JsonObject, JsonValue
from agentlog.workflow.errors import SpecError, SpecProblem
from agentlog.workflow.spec import (
    SPEC_FORMAT,
    LockDecl,
    LoopExhausted,
    Repeat,
    RetryPolicy,
    Step,
    WorkflowSpec,
)

T = TypeVar("T")
_MISSING = object()

_SPEC_KEYS = frozenset(WorkflowSpec(name="x", steps=()).to_json())
_STEP_KEYS = frozenset(Step(name="x").to_json())
_RETRY_KEYS = frozenset(RetryPolicy().to_json())
_REPEAT_KEYS = frozenset(Repeat(back_to="x", while_="x", max_iterations=1).to_json())
_LOCK_KEYS = frozenset(LockDecl(resource="x").to_json())


def spec_from_json(data: JsonValue | str | bytes) -> WorkflowSpec:
    """Read and validate a spec; see :meth:`WorkflowSpec.from_json`.

    Specs are immutable, and every event of a workflow's life refers to the
    same one, so parses are memoised (a bounded LRU) by the value's JSON text
    with sorted keys, written by orjson: reading and validating a 10-step spec
    costs ~85 us, its key ~10 us. orjson writes NaN and infinities as null and
    tuples as lists, so a hit also needs the value to equal the cached one
    (~8 us); anything else is parsed as it is, uncached.

    Raises:
        SpecError: not a spec, or an invalid one.
    """
    if isinstance(data, str | bytes):
        try:
            value: JsonValue = json.loads(data)
        except ValueError as e:
            raise SpecError(None, [SpecProblem(None, "json", f"not JSON text: {e}")]) from e
    else:
        value = data
    try:
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: big integers, non-string keys, other types
        return _parse(value)  # let the reader name the problem
    try:
        copy, spec = _parse_canonical(key)
    except SpecError:
        return _parse(value)  # the value's own problems (its copy may differ: NaN -> null)
    return spec if copy == value else _parse(value)


@functools.lru_cache(maxsize=256)
def _parse_canonical(key: bytes) -> tuple[JsonValue, WorkflowSpec]:
    # parsed from a private copy: the spec shares no mutable value with any caller
    copy: JsonValue = orjson.loads(key)
    return copy, _parse(copy)


def _parse(value: JsonValue) -> WorkflowSpec:
    from agentlog.workflow.validate import validate

    reader = _Reader()
    spec = reader.spec(value)
    if spec is None or reader.problems:
        name = value.get("name") if isinstance(value, dict) else None
        raise SpecError(name if isinstance(name, str) else None, reader.problems)
    problems = validate(spec)
    if problems:
        raise SpecError(spec.name, problems)
    return spec


class _Reader:
    """Collects every structural problem instead of stopping at the first.

    ``step`` and ``prefix`` say where the reader is, for problem messages.
    """

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []
        self.step: str | None = None
        self.prefix = ""

    def problem(self, field: str, message: str) -> None:
        self.problems.append(SpecProblem(self.step, f"{self.prefix}{field}", message))

    def obj(self, value: object, field: str, keys: frozenset[str]) -> JsonObject | None:
        if not isinstance(value, dict):
            self.problem(field or "spec", f"expected a JSON object, got {_kind(value)}")
            return None
        for key in sorted(set(value) - keys):
            where = f"{field}.{key}" if field else key
            self.problem(where, f"unknown key; expected one of {', '.join(sorted(keys))}")
        return cast(JsonObject, value)

    def get(
        self,
        data: JsonObject,
        key: str,
        check: Callable[[object], T | None],
        expected: str,
        default: object = _MISSING,
    ) -> T:
        value = data.get(key, default)
        if value is _MISSING:
            self.problem(key, f"missing; expected {expected}")
            return cast(T, None)
        if value is default:
            return cast(T, value)
        result = check(value)
        if result is None:
            self.problem(key, f"expected {expected}, got {_kind(value)} {value!r}")
        return cast(T, result)

    def spec(self, data: JsonValue) -> WorkflowSpec | None:
        top = self.obj(data, "", _SPEC_KEYS)
        if top is None:
            return None
        fmt = self.get(top, "format", _int, "an integer", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            self.problem("format", f"unsupported spec format {fmt!r}; this agentlog reads 1")
        steps_json = self.get(top, "steps", _list, "a list of steps")
        steps = [self.step_of(item, i) for i, item in enumerate(steps_json or ())]
        self.step = None
        return WorkflowSpec(
            name=self.get(top, "name", _str, "a string"),
            version=self.get(top, "version", _int, "an integer", 1),
            description=self.get(top, "description", _str, "a string", ""),
            priority=self.get(top, "priority", _int, "an integer 1-5", 3),
            timeout_ms=self.get(top, "timeout_ms", _int, "an integer or null", None),
            required_input=self.strings(top, "required_input"),
            example_input=self.json_value(top.get("example_input"), "example_input"),
            output=self.json_value(top.get("output"), "output"),
            steps=tuple(s for s in steps if s is not None),
        )

    def step_of(self, data: JsonValue, index: int) -> Step | None:
        name = data.get("name") if isinstance(data, dict) else None
        self.step = name if isinstance(name, str) else f"#{index}"
        obj = self.obj(data, "", _STEP_KEYS)
        if obj is None:
            return None
        return Step(
            name=self.get(obj, "name", _str, "a string"),
            agent=self.get(obj, "agent", _str, "a string or null", None),
            input=self.json_value(obj.get("input"), "input"),
            after=self.strings(obj, "after"),
            for_each=self.get(obj, "for_each", _str, "a string or null", None),
            when=self.get(obj, "when", _str, "a string or null", None),
            repeat=self.nested(obj.get("repeat"), "repeat", self.repeat),
            retry=self.nested(obj.get("retry"), "retry", self.retry) or RetryPolicy(),
            timeout_ms=self.get(obj, "timeout_ms", _int, "an integer or null", None),
            signal=self.get(obj, "signal", _str, "a string or null", None),
            locks=self.locks(obj.get("locks")),
            continue_on_failure=self.get(obj, "continue_on_failure", _bool, "a boolean", False),
        )

    def nested(
        self, data: JsonValue, field: str, read: Callable[[JsonValue], T | None]
    ) -> T | None:
        """Read an optional nested object with ``read``, problems prefixed by ``field``."""
        if data is None:
            return None
        outer, self.prefix = self.prefix, f"{self.prefix}{field}."
        try:
            return read(data)
        finally:
            self.prefix = outer

    def repeat(self, data: JsonValue) -> Repeat | None:
        obj = self.obj(data, "", _REPEAT_KEYS)
        if obj is None:
            return None
        on_exhausted = self.get(obj, "on_exhausted", _str, '"continue" or "fail"', "continue")
        if on_exhausted not in ("continue", "fail"):
            self.problem("on_exhausted", f'{on_exhausted!r}; use "continue" or "fail"')
            on_exhausted = "continue"
        return Repeat(
            back_to=self.get(obj, "back_to", _str, "a step name"),
            while_=self.get(obj, "while", _str, "a JMESPath condition"),
            max_iterations=self.get(obj, "max_iterations", _int, "an integer"),
            on_exhausted=cast(LoopExhausted, on_exhausted),
        )

    def retry(self, data: JsonValue) -> RetryPolicy | None:
        obj = self.obj(data, "", _RETRY_KEYS)
        if obj is None:
            return None
        default = RetryPolicy()
        return RetryPolicy(
            max_attempts=self.get(obj, "max_attempts", _int, "int", default.max_attempts),
            initial_backoff_ms=self.get(
                obj, "initial_backoff_ms", _int, "int", default.initial_backoff_ms
            ),
            multiplier=self.get(obj, "multiplier", _number, "a number", default.multiplier),
            max_backoff_ms=self.get(obj, "max_backoff_ms", _int, "int", default.max_backoff_ms),
            jitter=self.get(obj, "jitter", _number, "a number", default.jitter),
            non_retryable=self.strings(obj, "non_retryable"),
        )

    def locks(self, data: JsonValue) -> tuple[LockDecl, ...]:
        if data is None:
            return ()
        if not isinstance(data, list):
            self.problem("locks", f"expected a list of locks, got {_kind(data)}")
            return ()
        found = [self.nested(item, f"locks[{i}]", self.lock) for i, item in enumerate(data)]
        return tuple(lock for lock in found if lock is not None)

    def lock(self, data: JsonValue) -> LockDecl | None:
        obj = self.obj(data, "", _LOCK_KEYS)
        if obj is None:
            return None
        return LockDecl(
            resource=self.get(obj, "resource", _str, "a string"),
            ttl_ms=self.get(obj, "ttl_ms", _int, "an integer", 60_000),
            wait_ms=self.get(obj, "wait_ms", _int, "an integer", 30_000),
        )

    def strings(self, data: JsonObject, key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"expected a list of strings, got {value!r}")
            return ()
        return tuple(cast(list[str], value))

    def json_value(self, value: JsonValue, field: str) -> JsonValue:
        problem = json_problem(value)
        if problem:
            self.problem(field, problem)
        return value


def json_problem(value: object, path: str = "") -> str | None:
    """Why ``value`` is not a JSON value (None when it is)."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'value'} is {value}, not JSON"
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = json_problem(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'object'} has a non-string key {key!r}"
            problem = json_problem(item, f"{path}.{key}" if path else key)
            if problem:
                return problem
        return None
    return f"{path or 'value'} is a {type(value).__name__}, not a JSON value (use lists and dicts)"


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _list(value: object) -> list[JsonValue] | None:
    return value if isinstance(value, list) else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
