"""Avro single-object encoding of agentlog events.

Wire format (Avro specification, "Single-object encoding")::

    C3 01 | CRC-64-AVRO fingerprint of the schema, 8 bytes little-endian | Avro binary body

The body is plain Avro binary encoding with the event's schema file, so any
Avro library can read and write it with ``schemas/avro/<Event>.avsc`` alone.

Speed: fastavro's ``schemaless_writer``/``schemaless_reader`` interpret the
schema on every call and take about 40 µs for one ``TaskRequested`` here, more
than the whole budget of a decision. So this module compiles, once per schema,
a dedicated encoder and decoder that write and read the dataclasses directly
(Python source generated from the schema, as ``dataclasses`` generates
``__init__``). fastavro stays the reference: the tests compare the compiled
code with it byte for byte, and it still parses and fingerprints the schemas,
resolves data written with an earlier schema version, and explains bad events.

The generated Python code still takes about 10 µs to decode a ``TaskRequested``
and 7 µs to encode it. When the Cython extension ``agentlog.streams._avro_fast``
is built (``pip install -e .`` builds it), it runs instead: a per-record
*program* translated from the same bound schema, interpreted in C, writing the
same bytes and raising the same errors (the tests hold all three together).
The generated code documents the format and remains the fallback: used when the
extension does not import, or when ``AGENTLOG_PURE_PYTHON_CODEC=1``.
:data:`COMPILED` says which one runs.
"""

from __future__ import annotations

import functools
import json
import linecache
import math
import os
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any, TypeVar

import fastavro

from agentlog.errors import DecodeError, SchemaError
from agentlog.schemas.catalogue import AvroType, EventSchema, RecordBinding, SchemaCatalogue, bind
from agentlog.schemas.events import EVENT_TYPES, Event

try:
    from agentlog.streams import _avro_fast
except ImportError:  # not built: the generated Python code does everything
    _avro_fast = None  # type: ignore[assignment]

#: Environment variable: ``1`` uses the generated Python code even where the
#: compiled codec is built (to compare them, or to rule the extension out).
PURE_PYTHON_ENV = "AGENTLOG_PURE_PYTHON_CODEC"
#: Whether codecs built in this process use the compiled extension.
COMPILED: bool = _avro_fast is not None and os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10

E = TypeVar("E", bound=Event)
Converter = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SIZE = {"null": 0, "double": 8}
_GENERATED = "<agentlog codec "
_DEF_LINE = re.compile(r"def _enc\d+\(out, o.*\):  # (\S+)$")
_NAME = re.compile(r"\b_[A-Za-z]\w*")
_FIELD_LINE = re.compile(r"\s*(v\d+) = o\.(\w+)$")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # "1e999" would parse to inf, which no JSON encoder (ours included) writes back.
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


_JSON_ENCODER = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
)
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _make_dumps() -> Callable[[Any], str]:
    """``_JSON_ENCODER.encode`` without rebuilding its C encoder on every call.

    ``JSONEncoder.encode`` makes a new C encoder per call, two thirds of its
    time on the small JSON fields of events; this makes it once. With
    ``markers=None`` there is no circular-reference check: a cyclic value ends
    in a RecursionError (a SchemaError from :meth:`AvroCodec.encode`) instead
    of a ValueError. Falls back to ``encode`` without the C accelerator or if
    the accelerator's signature is not the expected one.
    """
    e = _JSON_ENCODER
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        chunks = make(
            None,
            e.default,
            json.encoder.encode_basestring,
            e.indent,
            e.key_separator,
            e.item_separator,
            e.sort_keys,
            e.skipkeys,
            e.allow_nan,
        )
        join = "".join

        def dumps(value: Any) -> str:
            return join(chunks(value, 0))

        probe = {"b": [1, 2.5, None, True, "é\n"], "a": {}}
        if dumps(probe) == e.encode(probe):
            return dumps
    except TypeError:  # no accelerator (None), or another signature
        pass
    return e.encode


_JSON_SCAN: Any = _JSON_DECODER.scan_once  # type: ignore[attr-defined]


def _loads(text: str, *, _scan: Any = _JSON_SCAN, _slow: Any = _JSON_DECODER.decode) -> Any:
    # The scanner alone when the text is exactly one value (what dumps_json writes);
    # JSONDecoder.decode, with its whitespace handling and error messages, otherwise.
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _slow(text)
    return value if end == len(text) else _slow(text)


#: Canonical JSON text: the same value always gives the same bytes.
dumps_json: Callable[[Any], str] = _make_dumps()
#: Strict JSON parsing: NaN and Infinity are rejected, as other languages would.
loads_json: Callable[[str], Any] = _loads


class _Truncated(Exception):
    """The body ended before the schema said it would (generated code raises it)."""


class _Corrupt(Exception):
    """The body does not follow the schema (generated code raises it)."""


# --- Avro binary primitives used by the generated code ---------------------------


def _zigzag_varint(n: int) -> bytes:
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int_varint(n: int) -> bytes:
    if not -(1 << 31) <= n < (1 << 31):
        raise ValueError(f"{n} does not fit an Avro int")
    return _zigzag_varint(n)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[pos]  # IndexError past the end means truncated
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")
    if n >> 64:
        raise _Corrupt("varint exceeds 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    """(end of the string or bytes, start of it) for the length at ``pos``."""
    n, pos = _read_long(data, pos)
    if n < 0:
        raise _Corrupt(f"negative length {n}")
    return pos + n, pos


def _read_int(data: bytes, pos: int) -> tuple[int, int]:
    n, pos = _read_long(data, pos)
    if not -(1 << 31) <= n < (1 << 31):
        raise _Corrupt(f"{n} does not fit an Avro int")
    return n, pos


#: Encodings of -64..63 (one byte each), indexable by the value itself.
_SMALL = [_zigzag_varint(i if i < 64 else i - 128) for i in range(128)]

_RUNTIME: dict[str, Any] = {
    "_S": _SMALL,
    "_vl": _zigzag_varint,
    "_vi": _int_varint,
    "_rl": _read_long,
    "_ri": _read_int,
    "_rn": _read_length,
    "_pd": struct.Struct("<d").pack,
    "_ud": struct.Struct("<d").unpack_from,
    "_dumps": dumps_json,
    "_loads": loads_json,
    "_EPOCH": _EPOCH,
    "_td": timedelta,
    "_new": object.__new__,
    "_Truncated": _Truncated,
    "_Corrupt": _Corrupt,
}


def _min_size(t: AvroType) -> int:
    if t.kind == "record":
        return sum(_min_size(ft) for _, ft in t.inner.fields)
    return _MIN_SIZE.get(t.kind, 1)


# --- code generation ----------------------------------------------------------------


class _Generator:
    """Writes the Python source of the encoder and decoder of every record of a schema."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = dict(_RUNTIME)
        self.functions: list[str] = []
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        name = self.var("_k")
        self.ns[name] = value
        return name

    def record(self, record: RecordBinding) -> None:
        enc: list[str] = [] if record.fields else ["    pass"]
        dec: list[str] = []
        slots: list[tuple[str, str]] = []
        for name, t in record.fields:
            value = self.var("v")
            enc.append(f"    {value} = o.{name}")
            self.encode(t, value, enc, "    ")
            self.decode(t, value, dec, "    ")
            slots.append((self.const(record.cls.__dict__[name].__set__), value))
        # Filling the slots directly skips the frozen dataclass __init__, half the cost.
        dec.append(f"    o = _new({self.const(record.cls)})")
        dec.extend(f"    {setter}(o, {value})" for setter, value in slots)
        dec.append("    return o, pos")
        name = record.full_name
        self.functions.append(self.function(f"_enc{record.index}(out, o", name, enc))
        self.functions.append(self.function(f"_dec{record.index}(data, pos, end", name, dec))

    def function(self, signature: str, record_name: str, body: list[str]) -> str:
        # Helpers and constants become keyword defaults: locals are faster than globals.
        text = "\n".join(body)
        used = sorted(set(_NAME.findall(text)) & self.ns.keys())
        bound = "".join(f", {n}={n}" for n in used)
        star = ", *" if used else ""
        return f"def {signature}{star}{bound}):  # {record_name}\n{text}"

    def encode(self, t: AvroType, v: str, out: list[str], pad: str) -> None:
        k = t.kind
        if k in ("int", "long"):
            varint = "_vi" if k == "int" else "_vl"
            out.append(f"{pad}out += _S[{v}] if -64 <= {v} < 64 else {varint}({v})")
        elif k in ("string", "json", "bytes"):
            data = {"string": f"{v}.encode()", "json": f"_dumps({v}).encode()", "bytes": v}[k]
            out += [f"{pad}b = {data}", f"{pad}n = len(b)"]
            out += [f"{pad}out += _S[n] if n < 64 else _vl(n)", f"{pad}out += b"]
        elif k == "timestamp":
            out.append(f"{pad}d = {v} - _EPOCH")
            out.append(f"{pad}n = (d.days * 86400 + d.seconds) * 1000000 + d.microseconds")
            out.append(f"{pad}out += _S[n] if -64 <= n < 64 else _vl(n)")
        elif k == "boolean":
            out.append(f'{pad}out += b"\\x01" if {v} else b"\\x00"')
        elif k == "double":
            out.append(f"{pad}out += _pd({v})")
        elif k == "record":
            out.append(f"{pad}_enc{t.inner.index}(out, {v})")
        elif k == "nullable":
            present = _SMALL[1 - t.null_index]
            out += [f"{pad}if {v} is None:", f"{pad}    out += {_SMALL[t.null_index]!r}"]
            out += [f"{pad}else:", f"{pad}    out += {present!r}"]
            self.encode(t.inner, v, out, pad + "    ")
        elif k in ("array", "map"):
            self.encode_block(t, v, out, pad)

    def encode_block(self, t: AvroType, v: str, out: list[str], pad: str) -> None:
        item = self.var("x")
        out += [f"{pad}if {v}:", f"{pad}    n = len({v})"]
        out.append(f"{pad}    out += _S[n] if n < 64 else _vl(n)")
        if t.kind == "array":
            out.append(f"{pad}    for {item} in {v}:")
        else:
            key = self.var("k")
            out.append(f"{pad}    for {key}, {item} in {v}.items():")
            self.encode(AvroType("string"), key, out, pad + "        ")
        self.encode(t.inner, item, out, pad + "        ")
        out.append(f'{pad}out += b"\\x00"')

    def varint(self, target: str, out: list[str], pad: str, reader: str = "_rl") -> None:
        out += [f"{pad}b = data[pos]", f"{pad}if b < 128:", f"{pad}    pos += 1"]
        out += [f"{pad}    {target} = (b >> 1) ^ -(b & 1)", f"{pad}else:"]
        out.append(f"{pad}    {target}, pos = {reader}(data, pos)")

    def take(self, size: str, out: list[str], pad: str) -> None:
        out += [f"{pad}q = pos + {size}", f"{pad}if q > end:", f"{pad}    raise _Truncated"]

    def decode(self, t: AvroType, v: str, out: list[str], pad: str) -> None:
        k = t.kind
        if k in ("int", "long"):
            self.varint(v, out, pad, "_ri" if k == "int" else "_rl")
        elif k in ("string", "json", "bytes"):
            # Lengths are never negative: an odd (negative) first byte takes the slow path.
            out += [f"{pad}b = data[pos]", f"{pad}if b < 128 and not b & 1:"]
            out += [f"{pad}    pos += 1", f"{pad}    q = pos + (b >> 1)", f"{pad}else:"]
            out += [f"{pad}    q, pos = _rn(data, pos)", f"{pad}if q > end:"]
            out.append(f"{pad}    raise _Truncated")
            data = {"string": "data[pos:q].decode()", "json": "_loads(data[pos:q].decode())"}
            out += [f"{pad}{v} = {data.get(k, 'data[pos:q]')}", f"{pad}pos = q"]
        elif k == "timestamp":
            self.varint("n", out, pad)
            out.append(f"{pad}{v} = _EPOCH + _td(0, 0, n)")
        elif k == "boolean":
            out += [f"{pad}b = data[pos]", f"{pad}pos += 1", f"{pad}if b > 1:"]
            out += [f"{pad}    raise _Corrupt('boolean byte ' + str(b))", f"{pad}{v} = b == 1"]
        elif k == "double":
            self.take("8", out, pad)
            out += [f"{pad}{v} = _ud(data, pos)[0]", f"{pad}pos = q"]
        elif k == "record":
            out.append(f"{pad}{v}, pos = _dec{t.inner.index}(data, pos, end)")
        elif k == "null":
            out.append(f"{pad}{v} = None")
        elif k == "nullable":
            self.varint("n", out, pad)
            out += [f"{pad}if n == {t.null_index}:", f"{pad}    {v} = None"]
            out.append(f"{pad}elif n == {1 - t.null_index}:")
            self.decode(t.inner, v, out, pad + "    ")
            out += [f"{pad}else:", f"{pad}    raise _Corrupt('union index ' + str(n))"]
        elif k in ("array", "map"):
            self.decode_block(t, v, out, pad)

    def decode_block(self, t: AvroType, v: str, out: list[str], pad: str) -> None:
        count, item, acc, key = self.var("c"), self.var("x"), self.var("a"), self.var("k")
        is_map = t.kind == "map"
        out += [f"{pad}{acc} = {'{}' if is_map else '[]'}", f"{pad}while True:"]
        inner = pad + "    "
        self.varint(count, out, inner)
        out += [f"{inner}if {count} == 0:", f"{inner}    break", f"{inner}if {count} < 0:"]
        out.append(f"{inner}    {count} = -{count}")
        self.varint("n", out, inner + "    ")  # the block's byte size, not needed
        min_item = _min_size(t.inner) + (1 if is_map else 0)
        out += [f"{inner}if {count} * {min_item} > end - pos:", f"{inner}    raise _Truncated"]
        out.append(f"{inner}for _ in range({count}):")
        if is_map:
            self.decode(AvroType("string"), key, out, inner + "    ")
        self.decode(t.inner, item, out, inner + "    ")
        out.append(
            f"{inner}    {acc}[{key}] = {item}" if is_map else f"{inner}    {acc}.append({item})"
        )
        out.append(f"{pad}{v} = {acc}" if is_map else f"{pad}{v} = tuple({acc})")


# --- the compiled codec: programs for agentlog.streams._avro_fast ----------------------

#: Primitive kinds whose values of an unexpected Python type the extension hands to
#: the generated code (so that they encode, or fail, exactly as they do there).
_SLOW_KINDS = ("int", "long", "double", "bytes", "string", "timestamp")


def _slow_encoders() -> dict[str, Callable[[bytearray, Any], None]]:
    """The generated encoder of one value of each of :data:`_SLOW_KINDS`."""
    generator = _Generator()
    source = []
    for kind in _SLOW_KINDS:
        body: list[str] = []
        generator.encode(AvroType(kind), "v", body, "    ")
        source.append(generator.function(f"_slow_{kind}(out, v", kind, body))
    exec(compile("\n\n".join(source), "<agentlog compiled codec fallbacks>", "exec"), generator.ns)  # noqa: S102 - generated from constants above
    return {kind: generator.ns[f"_slow_{kind}"] for kind in _SLOW_KINDS}


def _timestamp_of(micros: int) -> datetime:
    return _EPOCH + timedelta(0, 0, micros)


if _avro_fast is not None:
    _avro_fast.configure(
        truncated=_Truncated,
        corrupt=_Corrupt,
        dumps=dumps_json,
        loads=loads_json,
        utc=UTC,
        timestamp_of=_timestamp_of,
        slow=_slow_encoders(),
    )


def _program(records: list[RecordBinding]) -> _avro_fast.Record:
    """The extension's program for ``bind(schema)``: its first record is the event."""
    programs = [_avro_fast.Record(record.full_name, record.cls) for record in records]

    def op(t: AvroType) -> _avro_fast.Type:
        if t.kind == "record":
            return _avro_fast.Type("record", programs[t.inner.index])
        if t.kind == "nullable":
            return _avro_fast.Type("nullable", op(t.inner), null_index=t.null_index)
        if t.kind in ("array", "map"):
            min_item = _min_size(t.inner) + (1 if t.kind == "map" else 0)
            return _avro_fast.Type(t.kind, op(t.inner), min_item=min_item)
        return _avro_fast.Type(t.kind)

    for record, program in zip(records, programs, strict=True):
        program.set_fields([(sys.intern(name), op(t)) for name, t in record.fields])
    return programs[0]


# --- conversion to and from fastavro's dict records (the slow, general path) --------


def _to_datum(t: AvroType) -> Converter | None:
    """Dataclass value -> fastavro datum; None where the value is already one."""
    k = t.kind
    if k == "json":
        return dumps_json
    if k == "record":
        return _record_to_datum(t.inner)
    inner = _to_datum(t.inner) if k in ("array", "map", "nullable") else None
    if k == "array":
        return list if inner is None else (lambda v: [inner(x) for x in v])
    if k == "map":
        return dict if inner is None else (lambda v: {key: inner(x) for key, x in v.items()})
    if k == "nullable" and inner is not None:
        return lambda v: None if v is None else inner(v)
    return None


def _from_datum(t: AvroType) -> Converter | None:
    """fastavro datum -> dataclass value; None where the datum is already one."""
    k = t.kind
    if k == "json":
        return loads_json
    if k == "record":
        return _record_from_datum(t.inner)
    inner = _from_datum(t.inner) if k in ("array", "map", "nullable") else None
    if k == "array":
        return tuple if inner is None else (lambda v: tuple(inner(x) for x in v))
    if k == "map" and inner is not None:
        return lambda v: {key: inner(x) for key, x in v.items()}
    if k == "nullable" and inner is not None:
        return lambda v: None if v is None else inner(v)
    return None


def _record_to_datum(record: RecordBinding) -> Converter:
    plan = [(name, _to_datum(ft)) for name, ft in record.fields]
    return lambda o: {n: getattr(o, n) if c is None else c(getattr(o, n)) for n, c in plan}


def _record_from_datum(record: RecordBinding) -> Converter:
    cls, plan = record.cls, [(name, _from_datum(ft)) for name, ft in record.fields]
    return lambda d: cls(**{n: d[n] if c is None else c(d[n]) for n, c in plan})


# --- the codec ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    schema: EventSchema
    cls: type[Event]
    header: bytes
    #: event -> header + body
    encode: Callable[[Event], bytes]
    #: (data, start, end) -> (event, where its body ends)
    decode_from: Callable[[bytes, int, int], tuple[Event, int]]
    to_datum: Converter
    from_datum: Converter
    #: the extension's program, if compiled
    program: _avro_fast.Record | None = None


def _compile(schema: EventSchema, *, compiled: bool = COMPILED) -> _Compiled:
    records = bind(schema)
    header = MAGIC + schema.fingerprint
    encode: Callable[[Event], bytes]
    decode_from: Callable[[bytes, int, int], tuple[Event, int]]
    program = None
    if compiled:
        program = _program(records)
        encode = functools.partial(_avro_fast.encode, program, header)
        decode_from = functools.partial(_avro_fast.decode, program)
    else:
        generator = _Generator()
        for record in records:
            generator.record(record)
        source = "\n\n".join(generator.functions) + "\n"
        filename = f"{_GENERATED}{schema.name}>"
        # Registered so that tracebacks through generated code show its lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), generator.ns)  # noqa: S102 - source generated from our own schema files
        encode_into: Callable[[bytearray, Event], None] = generator.ns["_enc0"]

        def encode(event: Event) -> bytes:
            out = bytearray(header)
            encode_into(out, event)
            return bytes(out)

        decode_from = generator.ns["_dec0"]
    return _Compiled(
        schema=schema,
        cls=records[0].cls,
        header=header,
        encode=encode,
        decode_from=decode_from,
        to_datum=_record_to_datum(records[0]),
        from_datum=_record_from_datum(records[0]),
        program=program,
    )


def fingerprint_of(data: bytes) -> bytes:
    """The 8-byte schema fingerprint of an encoded event, without decoding it.

    Raises:
        DecodeError: ``truncated`` or ``bad_magic``.
    """
    if len(data) < HEADER_SIZE:
        raise DecodeError(
            "truncated", f"{len(data)} bytes; a single-object encoded event has at least 10"
        )
    if data[:2] != MAGIC:
        raise DecodeError(
            "bad_magic", f"starts with {bytes(data[:2]).hex()}, not c301 (Avro single-object)"
        )
    return bytes(data[2:HEADER_SIZE])


class AvroCodec:
    """Encodes events to Avro single-object bytes and decodes them back.

    Thread-safe and immutable once built; build it once (or use :meth:`default`)
    because construction compiles every schema.
    """

    def __init__(
        self, catalogue: SchemaCatalogue | None = None, *, compiled: bool | None = None
    ) -> None:
        """Compile an encoder and decoder for every schema of ``catalogue``.

        Args:
            catalogue: the schemas; defaults to :meth:`SchemaCatalogue.default`.
            compiled: use the compiled extension (True), the generated Python
                code (False), or whatever :data:`COMPILED` says (None).

        Raises:
            SchemaError: a schema has no matching dataclass in
                :mod:`agentlog.schemas.events`, or uses a type the codec lacks.
            RuntimeError: ``compiled=True`` but the extension is not built.
        """
        if compiled is None:
            compiled = COMPILED
        elif compiled and _avro_fast is None:
            raise RuntimeError("agentlog.streams._avro_fast is not built; pip install -e .")
        #: Whether this codec runs the compiled extension.
        self.compiled = compiled
        self.catalogue = catalogue or SchemaCatalogue.default()
        self._by_class: dict[type, _Compiled] = {}
        self._by_fingerprint: dict[bytes, _Compiled] = {}
        # The compiled hot path: encode and decode whole events, or say None.
        self._fast = _avro_fast.Codec() if compiled else None
        for schema in self.catalogue:
            compiled_schema = _compile(schema, compiled=compiled)
            self._by_class[compiled_schema.cls] = compiled_schema
            self._by_fingerprint[schema.fingerprint] = compiled_schema
            if self._fast is not None and compiled_schema.program is not None:
                self._fast.add(compiled_schema.program, compiled_schema.header, schema.name)
        # Earlier versions decode through fastavro's schema resolution.
        self._history = {s.fingerprint: s for s in self.catalogue.history()}

    @classmethod
    def default(cls) -> AvroCodec:
        """The codec of the packaged schemas, built once per process."""
        return _default_codec()

    def encode(self, event: Event) -> bytes:
        """The single-object encoding of ``event``.

        Raises:
            SchemaError: ``event`` is not an event class, its ``envelope.type``
                is not its class name, or a field value does not fit the schema
                (the message names the field).
        """
        if self._fast is not None:
            data = self._fast.encode(event)
            if data is not None:
                return data
            # else: not an event, or a bad one; find out below
        compiled = self._by_class.get(type(event))
        if compiled is None:
            raise SchemaError(
                f"{type(event).__name__} is not an agentlog event; use a class from "
                "agentlog.schemas.events"
            )
        envelope_type = getattr(getattr(event, "envelope", None), "type", None)
        if envelope_type != compiled.schema.name:
            raise SchemaError(
                f"{compiled.schema.name}.envelope.type is {envelope_type!r}; "
                f"it must be {compiled.schema.name!r} (build it with new_envelope)"
            )
        try:
            return compiled.encode(event)
        except Exception as e:  # any bad field value: explain it, whatever raised
            if _avro_fast is not None and isinstance(e, _avro_fast.FieldError):
                raise _explain(compiled, e.error, e) from e.error
            raise _explain(compiled, e) from e

    def decode(self, data: bytes | bytearray | memoryview | None) -> Event:
        """The event encoded in ``data``.

        Raises:
            DecodeError: with ``reason`` ``truncated`` (fewer than 10 bytes, no
                value, or the body ends early), ``bad_magic``,
                ``unknown_fingerprint`` or ``corrupt_body`` (the body does not
                follow the schema, has trailing bytes, or holds invalid JSON).
                No other exception escapes, whatever the bytes.
        """
        if self._fast is not None:
            fast_event: Event | None = self._fast.decode(data)
            if fast_event is not None:
                return fast_event
            # else: not bytes, not a current event, or bad bytes; find out below
        if type(data) is not bytes:
            if data is None:
                raise DecodeError("truncated", "no value (a tombstone?)")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise DecodeError("corrupt_body", f"expected bytes, not {type(data).__name__}")
            data = bytes(data)
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            fingerprint_of(data)  # raises the right DecodeError
        compiled = self._by_fingerprint.get(data[2:HEADER_SIZE])
        if compiled is None:
            return self._decode_history(data)
        end = len(data)
        try:
            event, pos = compiled.decode_from(data, HEADER_SIZE, end)
        except (_Truncated, IndexError):
            raise DecodeError(
                "truncated", f"{compiled.schema.name} body ends early ({end} bytes)"
            ) from None
        except Exception as e:  # whatever malformed bytes make the decoder raise
            raise _corrupt(compiled.schema.name, e) from e
        if pos != end:
            raise DecodeError(
                "corrupt_body", f"{compiled.schema.name}: {end - pos} trailing bytes after body"
            )
        if event.envelope.type != compiled.schema.name:
            raise DecodeError(
                "corrupt_body",
                f"{compiled.schema.name}: envelope.type is {event.envelope.type!r}",
            )
        return event

    def decode_as(self, data: bytes | bytearray | memoryview | None, cls: type[E]) -> E:
        """Decode and check the event is a ``cls``.

        Raises:
            DecodeError: as :meth:`decode`, or ``unexpected_type``.
        """
        event = self.decode(data)
        if not isinstance(event, cls):
            raise DecodeError(
                "unexpected_type", f"expected {cls.__name__}, got {type(event).__name__}"
            )
        return event

    def type_name_of(self, data: bytes) -> str:
        """The event name of encoded ``data``, from its header only.

        Raises:
            DecodeError: ``truncated``, ``bad_magic`` or ``unknown_fingerprint``.
        """
        fp = fingerprint_of(data)
        schema = self.catalogue.by_fingerprint(fp)
        if schema is None:
            raise _unknown(fp)
        return schema.name

    def to_record(self, event: Event) -> dict[str, Any]:
        """``event`` as a fastavro record (JSON fields as text), e.g. for container files."""
        compiled = self._by_class.get(type(event))
        if compiled is None:
            raise SchemaError(f"{type(event).__name__} is not an agentlog event")
        record: dict[str, Any] = compiled.to_datum(event)
        return record

    def from_record(self, name: str, record: dict[str, Any]) -> Event:
        """The event named ``name`` from a fastavro record of its current schema.

        Raises:
            SchemaError: unknown ``name``, or the record does not fit the schema.
        """
        cls = EVENT_TYPES.get(name)
        compiled = None if cls is None else self._by_class.get(cls)
        if compiled is None:
            raise SchemaError(f"unknown event {name!r}")
        try:
            event: Event = compiled.from_datum(record)
        except Exception as e:  # missing keys, bad JSON text, wrong shapes
            raise SchemaError(f"record is not a valid {name}: {type(e).__name__}: {e}") from e
        return event

    def _decode_history(self, data: bytes) -> Event:
        fp = data[2:HEADER_SIZE]
        writer = self._history.get(fp)
        if writer is None:
            raise _unknown(fp)
        compiled = self._by_class[EVENT_TYPES[writer.name]]
        buffer = BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(buffer, writer.parsed, compiled.schema.parsed)
            event: Event = compiled.from_datum(record)
        except EOFError:
            raise DecodeError("truncated", f"{writer.name} body ends early") from None
        except Exception as e:  # fastavro raises many types for malformed bytes
            raise _corrupt(writer.name, e) from e
        if buffer.tell() != len(data):
            raise DecodeError("corrupt_body", f"{writer.name}: trailing bytes after body")
        return event


def _unknown(fp: bytes) -> DecodeError:
    return DecodeError(
        "unknown_fingerprint",
        f"schema fingerprint {fp.hex()} is not in the catalogue "
        "(an event of a newer agentlog, or not an agentlog event)",
    )


def _corrupt(name: str, e: Exception) -> DecodeError:
    detail = str(e) if isinstance(e, _Corrupt) else f"{type(e).__name__}: {e}"
    return DecodeError("corrupt_body", f"{name} body does not follow its schema: {detail}")


def _explain(
    compiled: _Compiled, error: Exception, field: _avro_fast.FieldError | None = None
) -> SchemaError:
    """A SchemaError naming the field the encoder failed on, and its value.

    The compiled encoder says where (``field``); for the generated code, the
    traceback of ``error`` does.
    """
    where, tb = "", error.__traceback__
    if field is not None:
        where, tb = f"field {field.field} of {field.record} = {repr(field.value)[:200]}: ", None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.startswith(_GENERATED):
            lines = linecache.getlines(code.co_filename)[: tb.tb_lineno]
            record = next((m[1] for m in map(_DEF_LINE.match, lines[::-1]) if m), "?")
            for match in map(_FIELD_LINE.match, reversed(lines)):
                if match:
                    value = repr(tb.tb_frame.f_locals.get(match[1]))
                    where = f"field {match[2]} of {record} = {value[:200]}: "
                    break
        tb = tb.tb_next
    return SchemaError(
        f"cannot encode {compiled.schema.name}: {where}{type(error).__name__}: {error}; "
        "give the field a value of its schema type"
    )


@functools.cache
def _default_codec() -> AvroCodec:
    return AvroCodec()
