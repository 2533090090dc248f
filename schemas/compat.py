"""A structural Avro schema-resolution checker (Avro specification, "Schema Resolution").

``check_read(writer, reader)`` lists what stops a reader using schema
``reader`` from reading data written with schema ``writer``. Schema evolution
in agentlog must keep both directions working against the previous version:

* backward compatible: the new schema reads data written with the old one
  (``check_read(old, new)``), so consumers can be upgraded first;
* forward compatible: the old schema reads data written with the new one
  (``check_read(new, old)``), so producers can be upgraded first.

In practice: add fields only with a default, remove only fields that have a
default, never change a field's type (Avro's promotions such as int -> long
are one-way, so they break forward compatibility), and add or remove enum
symbols only in an enum that has a default.

Schemas are JSON values (as loaded from ``.avsc`` files), not fastavro-parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Schema = str | list[Any] | dict[str, Any]

_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_NAMED = frozenset(("record", "error", "enum", "fixed"))
#: writer type -> reader types it may be read as (besides itself).
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset(("long", "float", "double")),
    "long": frozenset(("float", "double")),
    "float": frozenset(("double",)),
    "string": frozenset(("bytes",)),
    "bytes": frozenset(("string",)),
}


def check_read(writer: Schema, reader: Schema) -> list[str]:
    """Problems that stop ``reader`` from reading data written with ``writer``.

    Args:
        writer: the schema the data was written with (JSON value).
        reader: the schema the data is read with (JSON value).

    Returns:
        Human-readable problems, each prefixed with the path of the field; an
        empty list when every datum of ``writer`` resolves against ``reader``.
    """
    checker = _Checker(_Names.of(writer), _Names.of(reader))
    return checker.check(writer, reader, _At("", "", _path_root(reader)))


def check_evolution(old: Schema, new: Schema) -> list[str]:
    """Problems of replacing ``old`` by ``new``, in both directions.

    Returns:
        Problems prefixed ``backward:`` (new cannot read old data) or
        ``forward:`` (old cannot read new data).
    """
    backward = [f"backward: {p}" for p in check_read(old, new)]
    forward = [f"forward: {p}" for p in check_read(new, old)]
    return backward + forward


def _path_root(schema: Schema) -> str:
    if isinstance(schema, dict) and "name" in schema:
        return str(schema["name"]).rpartition(".")[2]
    return "<root>"


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


@dataclass
class _Names:
    """The named types of one schema, by full name, with the namespace each is in."""

    types: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)

    @classmethod
    def of(cls, schema: Schema) -> _Names:
        names = cls()
        for node, namespace in _walk(schema, ""):
            full = _full_name(node["name"], node.get("namespace", namespace))
            names.types[full] = (node, full.rpartition(".")[0])
        return names

    def resolve(self, schema: Schema, namespace: str) -> tuple[Schema, str]:
        """Follow a reference to a named type; returns the schema and its namespace."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = _full_name(schema, namespace)
            if full in self.types:
                return self.types[full]
            if schema in self.types:
                return self.types[schema]
        if isinstance(schema, dict) and schema.get("type") in _NAMED:
            full = _full_name(schema["name"], schema.get("namespace", namespace))
            return schema, full.rpartition(".")[0]
        return schema, namespace


def _walk(schema: Schema, namespace: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every named type definition in ``schema`` with its enclosing namespace."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED:
            yield schema, namespace
            full = _full_name(schema["name"], schema.get("namespace", namespace))
            namespace = full.rpartition(".")[0]
            for f in schema.get("fields", ()):
                yield from _walk(f["type"], namespace)
        elif kind == "array":
            yield from _walk(schema["items"], namespace)
        elif kind == "map":
            yield from _walk(schema["values"], namespace)
        elif isinstance(kind, dict | list):
            yield from _walk(kind, namespace)


def _kind(schema: Schema) -> str:
    """The type name of a resolved schema: a primitive, record, enum, …, or union."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema.get("type")
    if isinstance(kind, dict | list):
        return _kind(kind)
    return "record" if kind == "error" else str(kind)


@dataclass(frozen=True, slots=True)
class _At:
    """Where the checker is: the enclosing namespaces and the path for messages."""

    w_ns: str
    r_ns: str
    path: str

    def down(self, suffix: str) -> _At:
        return _At(self.w_ns, self.r_ns, self.path + suffix)


class _Checker:
    def __init__(self, writer_names: _Names, reader_names: _Names) -> None:
        self.w_names = writer_names
        self.r_names = reader_names
        # Pairs of named types being compared: recursive schemas terminate here.
        self.in_progress: set[tuple[str, str]] = set()

    def check(self, w: Schema, r: Schema, at: _At) -> list[str]:
        w, w_ns = self.w_names.resolve(w, at.w_ns)
        r, r_ns = self.r_names.resolve(r, at.r_ns)
        at = _At(w_ns, r_ns, at.path)
        if isinstance(w, dict) and isinstance(w.get("type"), dict | list):
            return self.check(w["type"], r, at)
        if isinstance(r, dict) and isinstance(r.get("type"), dict | list):
            return self.check(w, r["type"], at)
        wk, rk = _kind(w), _kind(r)
        if wk == "union":
            # Data may hold any writer branch, so every branch must resolve.
            return [p for i, b in enumerate(w) for p in self.check(b, r, at.down(f"<{i}>"))]
        if rk == "union":
            # The spec picks the first reader branch that matches the writer's type.
            if any(not self.check(w, branch, at) for branch in r):
                return []
            return [f"{at.path}: writer type {_describe(w)} matches no branch of union {r}"]
        if wk != rk:
            if rk in _PROMOTIONS.get(wk, ()):
                return []
            return [f"{at.path}: writer type {_describe(w)} cannot be read as {_describe(r)}"]
        if wk in _PRIMITIVES or not isinstance(w, dict) or not isinstance(r, dict):
            return []
        return self.check_complex(wk, w, r, at)

    def check_complex(self, kind: str, w: dict[str, Any], r: dict[str, Any], at: _At) -> list[str]:
        if kind == "array":
            return self.check(w["items"], r["items"], at.down("[]"))
        if kind == "map":
            return self.check(w["values"], r["values"], at.down("{}"))
        if not _same_name(w, r, at):
            return [f"{at.path}: writer {kind} {w['name']!r} is not reader {kind} {r['name']!r}"]
        if kind == "fixed":
            if w.get("size") == r.get("size"):
                return []
            return [f"{at.path}: fixed size {w.get('size')} cannot be read as {r.get('size')}"]
        if kind == "enum":
            missing = [s for s in w.get("symbols", ()) if s not in r.get("symbols", ())]
            if missing and "default" not in r:
                return [f"{at.path}: reader enum lacks symbols {missing} and has no default"]
            return []
        if kind == "record":
            return self.check_record(w, r, at)
        return [f"{at.path}: unknown type {kind!r}"]

    def check_record(self, w: dict[str, Any], r: dict[str, Any], at: _At) -> list[str]:
        key = (_full_name(w["name"], at.w_ns), _full_name(r["name"], at.r_ns))
        if key in self.in_progress:
            return []
        self.in_progress.add(key)
        writer_fields = {f["name"]: f for f in w.get("fields", ())}
        problems: list[str] = []
        for rf in r.get("fields", ()):
            names = [rf["name"], *rf.get("aliases", ())]
            wf = next((writer_fields[n] for n in names if n in writer_fields), None)
            field_at = at.down(f".{rf['name']}")
            if wf is not None:
                problems += self.check(wf["type"], rf["type"], field_at)
            elif "default" not in rf:
                problems.append(f"{field_at.path}: not in the writer and no default in the reader")
        self.in_progress.discard(key)
        return problems


def _same_name(w: dict[str, Any], r: dict[str, Any], at: _At) -> bool:
    # The spec compares unqualified names; a reader alias may name the writer's type.
    w_full = _full_name(w["name"], at.w_ns)
    r_aliases = {_full_name(a, at.r_ns) for a in r.get("aliases", ())}
    short = w_full.rpartition(".")[2]
    return short == str(r["name"]).rpartition(".")[2] or w_full in r_aliases or short in r_aliases


def _describe(schema: Schema) -> str:
    if isinstance(schema, dict):
        name = schema.get("name")
        return f"{_kind(schema)} {name!r}" if name else repr(_kind(schema))
    return repr(schema) if isinstance(schema, str) else "union"
