"""Events as JSON and back: the archive's ``payload`` column, and ``as_of`` folds from it.

The JSON of an event is its fields, envelope included, with timestamps in
RFC 3339, bytes as hex and maps and arrays as objects and lists
(:func:`agentlog.projections.records.event_json` writes it; this module reads
it back). The round trip is exact for every event type, so folding archived
journal events gives the state folding the topic gives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, cast

from agentlog.errors import SchemaError
from agentlog.schemas.events import (
    EVENT_TYPES,
    DeadLetterHeader,
    Envelope,
    Event,
    TaskUsage,
)

_NESTED: dict[str, type] = {
    "Envelope": Envelope,
    "TaskUsage": TaskUsage,
    "DeadLetterHeader": DeadLetterHeader,
}

Converter = Callable[[Any], Any]


def event_to_dict(value: Any) -> Any:
    """An event (or any part of one) as a JSON-ready value (the slow, general path)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: event_to_dict(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): event_to_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [event_to_dict(v) for v in value]
    return value


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """The event whose JSON (as :func:`event_to_dict` or the archive writes it) is ``data``.

    Raises:
        SchemaError: not the JSON of an agentlog event.
    """
    try:
        name = data["envelope"]["type"]
        cls = EVENT_TYPES[name]
    except (KeyError, TypeError):
        raise SchemaError("not an agentlog event: no envelope.type naming an event") from None
    try:
        event: Event = _reader(cast("type", cls))(data)
    except (KeyError, TypeError, ValueError) as e:
        raise SchemaError(f"not a valid {name}: {type(e).__name__}: {e}") from e
    return event


@functools.cache
def _reader(cls: type) -> Converter:
    plan = [(f.name, _converter(str(f.type))) for f in fields(cls)]

    def read(data: Mapping[str, Any]) -> Any:
        return cls(**{n: data[n] if c is None else c(data[n]) for n, c in plan if n in data})

    return read


def _converter(annotation: str) -> Converter | None:
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    convert: Converter | None
    if base == "datetime":
        convert = datetime.fromisoformat
    elif base == "bytes":
        convert = bytes.fromhex
    elif base in _NESTED:
        convert = _reader(_NESTED[base])
    elif base.startswith("tuple[") and base[6:-6] in _NESTED:
        item = _reader(_NESTED[base[6:-6]])
        convert = lambda v: tuple(item(x) for x in v)  # noqa: E731
    elif base.startswith("Mapping["):
        convert = dict
    else:
        return None  # str, int, float, bool and JSON values are themselves
    if optional:
        inner = convert
        return lambda v: None if v is None else inner(v)
    return convert
