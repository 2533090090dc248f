"""The schema catalogue: the ``.avsc`` files, parsed, checked, fingerprinted and indexed.

The files under ``schemas/avro/`` are the wire contract; this module loads them
as package data, so an installed wheel and a source checkout behave the same.
Files under ``schemas/avro/history/`` (if any) are earlier versions of an
event's schema, kept so that data written with them stays decodable: they are
indexed by fingerprint only and resolved against the current schema.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import keyword
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from agentlog.errors import SchemaError
from agentlog.schemas.events import EVENT_TYPES, NESTED_RECORD_TYPES

NAMESPACE = "agentlog"
ENVELOPE_NAME = f"{NAMESPACE}.Envelope"
#: Custom schema attribute naming the topic family an event is published on.
TOPIC_ATTRIBUTE = "agentlog.topic"


@dataclass(frozen=True, slots=True)
class EventSchema:
    """One event schema as loaded from its ``.avsc`` file.

    Attributes:
        name: the event name, e.g. ``"TaskRequested"`` (the file stem).
        full_name: the Avro full name, e.g. ``"agentlog.TaskRequested"``.
        topic: the topic family, e.g. ``"tasks"`` (from the ``agentlog.topic`` attribute).
        schema: the JSON document as written in the file.
        parsed: the schema parsed by fastavro, for ``fastavro`` calls.
        canonical_form: the Avro Parsing Canonical Form.
        fingerprint: CRC-64-AVRO of the canonical form, 8 bytes little-endian,
            as written in the single-object encoding header.
        path: the file it was loaded from.
        current: False for an earlier version loaded from ``history/``.
    """

    name: str
    full_name: str
    topic: str
    schema: dict[str, Any]
    parsed: dict[str, Any]
    canonical_form: str
    fingerprint: bytes
    path: Path
    current: bool = True


def schema_fingerprint(schema: str | list[Any] | dict[str, Any]) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema (JSON value).

    fastavro returns the Rabin fingerprint as the hex of its little-endian
    bytes, which is exactly the byte order single-object encoding wants.
    """
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def load_schema_text(text: str, origin: Path, *, current: bool = True) -> EventSchema:
    """Parse and check one event schema.

    Args:
        text: the ``.avsc`` JSON text.
        origin: where it came from, for messages and :attr:`EventSchema.path`.
        current: whether this is the current version of the event.

    Raises:
        SchemaError: the text is not JSON, not a valid Avro schema, or not an
            agentlog event (named record in namespace ``agentlog`` whose first
            field is the ``envelope``).
    """
    try:
        schema = json.loads(text)
    except ValueError as e:
        raise SchemaError(f"{origin}: not JSON ({e}); fix the file") from e
    try:
        parsed = cast(dict[str, Any], fastavro.parse_schema(schema, named_schemas={}))
    except Exception as e:  # fastavro raises several unrelated types for bad schemas
        raise SchemaError(f"{origin}: not a valid Avro schema ({e}); fix the file") from e
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError(f"{origin}: an event schema must be a record")
    name = str(schema.get("name", ""))
    full_name = name if "." in name else f"{schema.get('namespace', '')}.{name}"
    namespace, _, short = full_name.rpartition(".")
    if namespace != NAMESPACE:
        raise SchemaError(f"{origin}: record {full_name!r} must be in namespace {NAMESPACE!r}")
    if current and short != origin.stem:
        raise SchemaError(f"{origin}: record {short!r} must be in a file named {short}.avsc")
    fields = schema.get("fields") or [{}]
    envelope = fields[0].get("type")
    if fields[0].get("name") != "envelope" or not isinstance(envelope, dict):
        raise SchemaError(f"{origin}: the first field must be 'envelope' defining {ENVELOPE_NAME}")
    canonical = to_parsing_canonical_form(schema)
    return EventSchema(
        name=short,
        full_name=full_name,
        topic=str(schema.get(TOPIC_ATTRIBUTE, "")),
        schema=schema,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=schema_fingerprint(schema),
        path=origin,
        current=current,
    )


class SchemaCatalogue:
    """Every event schema, by name and by fingerprint.

    Build it with :meth:`default` (the packaged files, loaded once) or
    :meth:`from_directory`; it is immutable afterwards.
    """

    def __init__(self, schemas: Iterable[EventSchema], history: Iterable[EventSchema] = ()) -> None:
        """Index ``schemas`` (current versions) and ``history`` (earlier versions).

        Raises:
            SchemaError: two schemas share a name or a fingerprint, an earlier
                version names no current event, or the envelopes differ.
        """
        self._by_name: dict[str, EventSchema] = {}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        for item in sorted(schemas, key=lambda s: s.name):
            if item.name in self._by_name:
                raise SchemaError(f"{item.path}: event {item.name} is defined twice")
            self._by_name[item.name] = item
        for item in [*self._by_name.values(), *history]:
            if item.name not in self._by_name:
                raise SchemaError(f"{item.path}: earlier version of unknown event {item.name}")
            other = self._by_fingerprint.get(item.fingerprint)
            if other is not None and other.canonical_form != item.canonical_form:
                raise SchemaError(f"{item.path} and {other.path} have the same fingerprint")
            self._by_fingerprint.setdefault(item.fingerprint, item)
        self._check_envelopes()

    def _check_envelopes(self) -> None:
        envelopes = {s.name: s.schema["fields"][0]["type"] for s in self._by_name.values()}
        if not envelopes:
            return
        reference_name, reference = next(iter(envelopes.items()))
        for name, envelope in envelopes.items():
            if envelope != reference:
                raise SchemaError(
                    f"{self._by_name[name].path}: the envelope differs from the one in "
                    f"{reference_name}.avsc; every file must define {ENVELOPE_NAME} identically"
                )

    @classmethod
    def from_directory(cls, directory: Traversable) -> SchemaCatalogue:
        """Load ``*.avsc`` from ``directory`` and earlier versions from ``directory/history``.

        Raises:
            SchemaError: ``directory`` is missing or empty, or a file is not a
                valid event schema (see :func:`load_schema_text`).
        """
        if not directory.is_dir():
            raise SchemaError(f"{directory} is not a directory of .avsc schema files")
        current = [_load(entry) for entry in _avsc_files(directory)]
        history_dir = directory / "history"
        history = (
            [_load(entry, current=False) for entry in _avsc_files(history_dir)]
            if history_dir.is_dir()
            else []
        )
        if not current:
            raise SchemaError(f"{directory}: no .avsc files; is the package installed completely?")
        return cls(current, history)

    @classmethod
    def default(cls) -> SchemaCatalogue:
        """The catalogue of the packaged schema files, loaded once per process."""
        return _default_catalogue()

    def names(self) -> list[str]:
        """Every event name, sorted."""
        return list(self._by_name)

    def get(self, name: str) -> EventSchema:
        """The current schema of event ``name``.

        Raises:
            SchemaError: no such event.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(
                f"unknown event {name!r}; known events: {', '.join(self._by_name)}"
            ) from None

    def by_fingerprint(self, fp: bytes) -> EventSchema | None:
        """The schema (current or earlier version) with fingerprint ``fp``, if any."""
        return self._by_fingerprint.get(fp)

    def path(self, name: str) -> Path:
        """The ``.avsc`` file of event ``name``."""
        return self.get(name).path

    def history(self) -> list[EventSchema]:
        """Earlier schema versions that data may still be written with."""
        return [s for s in self._by_fingerprint.values() if not s.current]

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


def _avsc_files(directory: Traversable) -> list[Traversable]:
    return sorted(
        (e for e in directory.iterdir() if e.name.endswith(".avsc") and e.is_file()),
        key=lambda e: e.name,
    )


def _load(entry: Traversable, *, current: bool = True) -> EventSchema:
    return load_schema_text(entry.read_text(encoding="utf-8"), Path(str(entry)), current=current)


@functools.cache
def _default_catalogue() -> SchemaCatalogue:
    return SchemaCatalogue.from_directory(resources.files("agentlog.schemas") / "avro")


# --- binding schemas to the dataclasses of agentlog.schemas.events ---------------------

#: The Avro types event schemas may use (plus records, arrays, maps, ``[null, T]``
#: unions, ``timestamp-micros`` longs and ``agentlog.json`` strings): what the
#: compiled codec in ``agentlog.streams.codec`` supports.
SUPPORTED_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "double", "bytes", "string"))
JSON_LOGICAL_TYPE = "agentlog.json"


@dataclass(slots=True, eq=False)
class AvroType:
    """An Avro type of a schema file, resolved and bound to Python.

    Attributes:
        kind: a primitive name, ``json``, ``timestamp``, ``array``, ``map``,
            ``record`` or ``nullable`` (a ``[null, T]`` union).
        inner: the item, value or non-null branch :class:`AvroType`, or the
            :class:`RecordBinding` of a record.
        null_index: the branch index of null in a ``nullable`` union.
    """

    kind: str
    inner: Any = None
    null_index: int = 0


@dataclass(slots=True, eq=False)
class RecordBinding:
    """An Avro record bound to its dataclass; ``index`` orders records within a file."""

    full_name: str
    cls: type
    index: int
    fields: list[tuple[str, AvroType]] = field(default_factory=list)


def bind(schema: EventSchema) -> list[RecordBinding]:
    """Bind every record of a current event schema to its dataclass.

    Returns:
        The records in definition order; the first is the event itself.

    Raises:
        SchemaError: a record has no dataclass, the dataclass fields differ from
            the record fields (names and order), or the schema uses a type
            outside :data:`SUPPORTED_PRIMITIVES` and the constructs above.
    """
    binder = _Binder(schema)
    binder.resolve(schema.schema, "")
    return binder.records


class _Binder:
    """Resolves one schema file's JSON into :class:`AvroType` trees bound to dataclasses."""

    def __init__(self, event: EventSchema) -> None:
        self.event = event
        self.named: dict[str, AvroType] = {}
        self.records: list[RecordBinding] = []

    def fail(self, problem: str) -> SchemaError:
        return SchemaError(f"{self.event.path}: {problem}")

    def resolve(self, t: Any, ns: str) -> AvroType:
        if isinstance(t, str):
            if t in SUPPORTED_PRIMITIVES:
                return AvroType(t)
            full = t if "." in t else f"{ns}.{t}"
            if full not in self.named:
                raise self.fail(f"unknown type name {t!r}")
            return self.named[full]
        if isinstance(t, list):
            return self.resolve_union(t, ns)
        kind, logical = t.get("type"), t.get("logicalType")
        if kind == "record":
            return self.resolve_record(t, ns)
        if kind == "array":
            return self.sized(AvroType("array", self.resolve(t["items"], ns)))
        if kind == "map":
            return self.sized(AvroType("map", self.resolve(t["values"], ns)))
        if kind == "string" and logical == JSON_LOGICAL_TYPE:
            return AvroType("json")
        if kind == "long" and logical == "timestamp-micros":
            return AvroType("timestamp")
        if kind in SUPPORTED_PRIMITIVES and logical is None:
            return AvroType(kind)
        raise self.fail(f"unsupported type {json.dumps(t)}; extend agentlog.streams.codec first")

    def resolve_union(self, t: list[Any], ns: str) -> AvroType:
        if len(t) != 2 or "null" not in t or t[0] == t[1]:
            raise self.fail(f"only [null, T] unions are supported, not {json.dumps(t)}")
        null_index = t.index("null")
        return AvroType("nullable", self.resolve(t[1 - null_index], ns), null_index)

    def resolve_record(self, t: dict[str, Any], ns: str) -> AvroType:
        name = t["name"]
        ns = name.rpartition(".")[0] if "." in name else t.get("namespace", ns)
        full = f"{ns}.{name.rpartition('.')[2]}"
        record = RecordBinding(full, self.record_class(full), len(self.records))
        self.records.append(record)
        resolved = self.named[full] = AvroType("record", record)
        record.fields = [(f["name"], self.resolve(f["type"], ns)) for f in t["fields"]]
        self.check_class(record)
        return resolved

    def record_class(self, full_name: str) -> type:
        cls: type | None = None
        if full_name == self.event.full_name:
            cls = EVENT_TYPES.get(self.event.name)
        cls = cls or NESTED_RECORD_TYPES.get(full_name)
        if cls is None:
            raise self.fail(f"no dataclass for record {full_name}; add one to schemas/events.py")
        return cls

    def check_class(self, record: RecordBinding) -> None:
        cls, names = record.cls, [name for name, _ in record.fields]
        if [f.name for f in dataclasses.fields(cls)] != names:
            raise self.fail(
                f"{cls.__name__} fields {[f.name for f in dataclasses.fields(cls)]} "
                f"differ from record {record.full_name} fields {names}; keep them equal, in order"
            )
        for name in names:
            if keyword.iskeyword(name) or not name.isidentifier():
                raise self.fail(f"field name {name!r} is not usable as a Python attribute")
            if not isinstance(cls.__dict__.get(name), types.MemberDescriptorType):
                raise self.fail(f"{cls.__name__} must be a dataclass with slots=True")
        if hasattr(cls, "__post_init__"):
            raise self.fail(f"{cls.__name__} must not define __post_init__ (decoding skips it)")

    def sized(self, t: AvroType) -> AvroType:
        # A block count is bounded by the bytes left only if every item takes some.
        item = t.inner
        if item.kind == "null" or (item.kind == "record" and not item.inner.fields):
            raise self.fail("arrays and maps of zero-size items cannot be decoded safely")
        return t
