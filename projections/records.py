"""What the projector folds: an event with its coordinates in the log, and JSON text helpers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import asyncpg
import orjson

from agentlog.schemas.events import Envelope, Event
from agentlog.schemas.slots import install_slot_init


@install_slot_init  # one per event read: half the cost of the dataclass __init__
@dataclass(frozen=True, slots=True)
class Record:
    """One event as read from a topic.

    Attributes:
        topic: the full topic name.
        partition: the partition.
        offset: the offset of the record.
        timestamp_ms: the broker (log-append or create) timestamp, -1 if unknown.
        event: the decoded event.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event: Event

    @property
    def event_id(self) -> str:
        """The event's id (the archive keeps one event per id)."""
        return self.event.envelope.event_id


#: What PostgreSQL raises for text it cannot hold (U+0000 in ``text``, ``\u0000`` in ``jsonb``).
UNSTORABLE = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


def storable(record: Record) -> Record:
    """``record`` with U+0000 replaced by U+FFFD in every string of its event.

    PostgreSQL ``text`` cannot hold U+0000, and any client may produce an event
    with one. The read models then show U+FFFD where it was; the topic keeps
    the event as it was produced.
    """
    return Record(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        _without_nul(record.event),
    )


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, Mapping):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        changed = {f.name: _without_nul(getattr(value, f.name)) for f in fields(value)}
        return dataclasses.replace(value, **changed)
    return value


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, MappingProxyType | Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _clean(text: str) -> str:
    # PostgreSQL's jsonb cannot hold U+0000; the Avro copy in the archive keeps the exact value.
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def json_text(value: Any) -> str | None:
    """``value`` as JSON text for a jsonb column; None (SQL NULL) for None."""
    if value is None:
        return None
    return to_json(value)


def to_json(value: Any) -> str:
    """``value`` (a JSON value, an event or a row) as JSON text, never None."""
    try:
        text = orjson.dumps(value, default=_default).decode()
    except (TypeError, orjson.JSONEncodeError):
        # integers beyond 64 bits and other values orjson refuses; the stdlib takes them
        text = json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)
    return _clean(text)


def event_json(event: Event) -> str:
    """The whole event (envelope included) as JSON: timestamps RFC 3339, bytes as hex.

    For a ``json`` column: U+0000 stays escaped as it is (only ``jsonb`` refuses it).
    The text is what ``orjson.dumps(event)`` gives; the event and its envelope
    go to orjson as dicts (:func:`_as_dict`), which it writes in a third less
    time than it walks a dataclass: this runs for every archived event.
    """
    try:
        return orjson.dumps(_as_dict(event), default=_default).decode()
    except (TypeError, orjson.JSONEncodeError):
        from agentlog.projections.payload import event_to_dict

        return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)


_AS_DICT: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _as_dict(event: Event) -> dict[str, Any]:
    """The event's fields as a dict in field order, its envelope as a dict too (one level)."""
    convert = _AS_DICT.get(type(event))
    if convert is None:
        convert = _AS_DICT[type(event)] = _dict_maker(type(event))
    return convert(event)


def _dict_maker(cls: type) -> Callable[[Any], dict[str, Any]]:
    """``lambda e: {"f": e.f, …, "envelope": {"event_id": e.envelope.event_id, …}}`` for ``cls``.

    Generated once per event class: a literal dict of attribute reads is the
    cheapest way to build it. Names come from the dataclass fields (identifiers).
    """

    def items(of: type, value: str) -> str:
        return ", ".join(
            f"{f.name!r}: {value}.{f.name}"
            if f.name != "envelope"
            else f"'envelope': {{{items(Envelope, value + '.envelope')}}}"
            for f in fields(of)
        )

    source = f"def as_dict(e):\n    return {{{items(cls, 'e')}}}\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<event_json {cls.__name__}>", "exec"), namespace)  # noqa: S102
    maker: Callable[[Any], dict[str, Any]] = namespace["as_dict"]
    return maker


def timestamp(ms: int) -> datetime | None:
    """A broker timestamp in milliseconds as an aware datetime (None when unknown)."""
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


def minute_of(moment: datetime) -> datetime:
    """The start of the minute ``moment`` falls in (the rollup bucket)."""
    return moment.replace(second=0, microsecond=0)


def micros(seconds: float) -> int:
    """Seconds as whole microseconds (rollups add integers so the order never matters)."""
    return round(seconds * 1_000_000)
