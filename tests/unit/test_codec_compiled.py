"""The compiled codec (``agentlog.streams._avro_fast``) against the generated Python code.

Three implementations of one wire format must agree byte for byte and error for
error: the Cython extension, the generated Python code it replaces (still the
fallback), and fastavro (the reference). ``tests/unit/test_codec.py`` runs
against whichever codec is active; this module compares them directly.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import math
import os
import struct
import subprocess
import sys
import types
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog.errors import DecodeError, SchemaError
from agentlog.schemas.catalogue import bind
from agentlog.schemas.events import EVENT_TYPES, Event
from agentlog.streams import codec as codec_module
from agentlog.streams.codec import HEADER_SIZE, MAGIC, PURE_PYTHON_ENV, AvroCodec
from tests.support.samples import all_sample_events, sample_event
from tests.unit.test_codec import _ANY_JSON, EVENTS, mutated

PURE_REQUESTED = os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")
BUILT = codec_module._avro_fast is not None
needs_extension = pytest.mark.skipif(not BUILT, reason="agentlog.streams._avro_fast is not built")

PURE = AvroCodec(compiled=False)
FAST = AvroCodec(compiled=True) if BUILT else PURE
SAMPLES = all_sample_events() + all_sample_events(minimal=True)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_the_compiled_codec_is_active() -> None:
    """CI must not run the slow path unnoticed: ``pip install -e .`` builds the extension."""
    if PURE_REQUESTED:
        assert not codec_module.COMPILED
        assert not AvroCodec.default().compiled
        return
    assert BUILT, "agentlog.streams._avro_fast does not import; build it: pip install -e ."
    assert codec_module.COMPILED
    assert AvroCodec.default().compiled


@pytest.mark.parametrize(("value", "compiled"), [("1", False), ("", BUILT)])
def test_the_environment_variable_forces_the_generated_code(value: str, compiled: bool) -> None:
    probe = "from agentlog.streams import codec; print(codec.COMPILED, codec.AvroCodec().compiled)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, PURE_PYTHON_ENV: value},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == [str(compiled)] * 2


# --- helpers ---------------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """``value`` with every type spelled out: 1 vs 1.0 vs True, -0.0, tuple vs list, key order."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value), tuple((f.name, _shape(getattr(value, f.name))) for f in fields))
    if isinstance(value, dict):
        return (type(value), tuple((_shape(k), _shape(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value), tuple(_shape(v) for v in value))
    if isinstance(value, datetime):
        return (type(value), value.isoformat(), value.tzinfo, value.fold)
    return (type(value), repr(value))


def _encoded(codec: AvroCodec, event: Any) -> tuple[str, Any]:
    try:
        return "ok", codec.encode(event)
    except SchemaError as e:
        return "SchemaError", str(e)


def _decoded(codec: AvroCodec, data: Any) -> tuple[str, Any]:
    try:
        return "ok", _shape(codec.decode(data))
    except DecodeError as e:  # the only exception decode may raise
        return e.reason, str(e)


def _fastavro_body(event: Event) -> bytes:
    body = io.BytesIO()
    schema = PURE.catalogue.get(type(event).__name__)
    fastavro.schemaless_writer(body, schema.parsed, PURE.to_record(event))
    return body.getvalue()


def _check_event(event: Event) -> None:
    data = FAST.encode(event)
    assert data == PURE.encode(event)
    assert data[HEADER_SIZE:] == _fastavro_body(event)
    decoded = FAST.decode(data)
    assert _shape(decoded) == _shape(PURE.decode(data))
    assert decoded == event  # JSON objects come back with their keys sorted


def _check_bytes(data: bytes) -> None:
    """Both codecs accept ``data`` as the same event, or refuse it for the same reason."""
    outcome = _decoded(FAST, data)
    assert outcome == _decoded(PURE, data)
    if outcome[0] == "ok":  # fastavro reads the same event
        event = PURE.decode(data)
        schema = PURE.catalogue.get(type(event).__name__)
        record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema.parsed, None)
        assert _shape(PURE.from_record(schema.name, record)) == outcome[1]


# --- encoding: the same bytes ----------------------------------------------------------------


@needs_extension
@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_sample_encodes_to_the_same_bytes(event: Event) -> None:
    _check_event(event)


@needs_extension
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_any_event_encodes_and_decodes_alike(event: Event) -> None:
    _check_event(event)


@needs_extension
@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        EPOCH,
        datetime(2000, 2, 29, 12, tzinfo=UTC),
        datetime(2100, 3, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 3, 30, 1, 30, tzinfo=UTC).replace(fold=1),
        datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(0))),
    ],
    ids=str,
)
def test_timestamps_across_the_range_and_time_zones(at: datetime) -> None:
    event = sample_event("StepTimedOut", deadline=at)
    data = FAST.encode(event)
    assert data == PURE.encode(event)
    assert data[HEADER_SIZE:] == _fastavro_body(event)
    decoded = FAST.decode(data)
    assert decoded == PURE.decode(data) == event
    assert decoded.deadline.tzinfo is UTC  # type: ignore[union-attr]


@needs_extension
@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_any_utc_timestamp_round_trips_alike(at: datetime) -> None:
    _check_event(sample_event("StepTimedOut", deadline=at))


# --- encoding: the same errors, naming the field ---------------------------------------------


class _Color(enum.IntEnum):
    RED = 1


class _Text(str):
    __slots__ = ()


_CYCLIC: list[Any] = []
_CYCLIC.append(_CYCLIC)

#: Values of every wrong (and some odd but right) Python type for any field.
_ODD_VALUES: list[Any] = [
    None,
    "text",
    "",
    _Text("sub"),
    0,
    -65,
    2**31,
    -(2**31) - 1,
    2**63,
    -(2**63) - 1,
    True,
    _Color.RED,
    1.5,
    math.nan,
    math.inf,
    b"bytes",
    bytearray(b"ba"),
    memoryview(b"mv"),
    datetime(2025, 1, 1),
    datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-3))),
    date(2025, 1, 1),
    timedelta(1),
    (),
    ("a", "b"),
    ["a"],
    {},
    {"k": "v"},
    {"k": 1},
    {1: "v"},
    {"k": object()},
    types.MappingProxyType({"k": "v"}),
    {1, 2},
    _CYCLIC,
    object(),
]


def _field_paths(event: Event) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for f in dataclasses.fields(event):  # type: ignore[arg-type]
        paths.append((f.name,))
        value = getattr(event, f.name)
        if dataclasses.is_dataclass(value):
            paths += [(f.name, inner.name) for inner in dataclasses.fields(value)]
    return paths


def _replace(event: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(event, **{path[0]: value})
    return dataclasses.replace(
        event, **{path[0]: _replace(getattr(event, path[0]), path[1:], value)}
    )


@needs_extension
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_odd_field_values_encode_or_fail_alike(event: Event, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(_field_paths(event)))
    value = data.draw(st.sampled_from(_ODD_VALUES))
    odd = _replace(event, path, value)
    outcome = _encoded(FAST, odd)
    assert outcome == _encoded(PURE, odd)
    if outcome[0] == "ok" and path != ("envelope", "type"):
        assert outcome[1][HEADER_SIZE:] == _fastavro_body(PURE.decode(outcome[1]))


@needs_extension
def test_encode_errors_name_the_field_record_and_value() -> None:
    event = sample_event("TaskRequested")
    cases = [
        (("attempt",), "one", "field attempt of agentlog.TaskRequested = 'one': TypeError"),
        (("priority",), 2**31, "field priority of agentlog.TaskRequested = 2147483648: ValueError"),
        (("input",), {1, 2}, "field input of agentlog.TaskRequested = {1, 2}: TypeError"),
        (("envelope", "source"), b"x", "field source of agentlog.Envelope = b'x': AttributeError"),
        (("envelope", "key"), None, "field key of agentlog.Envelope = None: AttributeError"),
        (("fencing_tokens",), {"r": "1"}, "field fencing_tokens of agentlog.TaskRequested"),
    ]
    for path, value, message in cases:  # the innermost record names the field
        odd = _replace(event, path, value)
        with pytest.raises(SchemaError) as info:
            FAST.encode(odd)
        assert message in str(info.value)
        assert str(info.value).startswith("cannot encode TaskRequested: field ")
        assert str(info.value).endswith("; give the field a value of its schema type")
        assert _encoded(PURE, odd) == ("SchemaError", str(info.value))
        assert info.value.__cause__ is not None
        assert not isinstance(info.value.__cause__, codec_module._avro_fast.FieldError)
    for envelope in (None, "envelope"):  # no envelope at all: no envelope.type
        odd = _replace(event, ("envelope",), envelope)
        expected = "TaskRequested.envelope.type is None; it must be 'TaskRequested'"
        assert _encoded(FAST, odd) == _encoded(PURE, odd)
        assert expected in _encoded(FAST, odd)[1]


# --- decoding: the same events, the same errors ----------------------------------------------


@needs_extension
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_alike(data: bytes) -> None:
    _check_bytes(data)


@needs_extension
@settings(max_examples=600, deadline=None)
@given(st.sampled_from(list(EVENT_TYPES)), st.binary(max_size=200))
def test_random_bodies_decode_alike(name: str, body: bytes) -> None:
    _check_bytes(MAGIC + PURE.catalogue.get(name).fingerprint + body)


@needs_extension
@settings(max_examples=800, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_events_decode_alike(event: Event, data: st.DataObject) -> None:
    _check_bytes(mutated(PURE.encode(event), data))


#: Events whose last field is of each kind, and a value of it with a known encoding size.
_LAST = {
    "string": ("AgentDeregistered", "", 1),
    "int": ("LockQueued", 0, 1),
    "long": ("LockExpired", 0, 1),
    "timestamp": ("LockAcquired", EPOCH, 1),
    "nullable": ("LockDenied", None, 1),
    "json": ("SignalSent", None, 5),
    "boolean": ("StepFailed", False, 1),
    "map-long": ("TaskRequested", {}, 1),
    "map-string": ("WorkflowStarted", {}, 1),
    "nullable-json": ("WorkflowRejected", None, 1),
}


def _with_tail(kind: str, tail: bytes) -> bytes:
    """An event of ``_LAST[kind]`` whose last field's bytes are ``tail``."""
    name, value, size = _LAST[kind]
    schema = PURE.catalogue.get(name)
    last = bind(schema)[0].fields[-1][0]
    data = PURE.encode(sample_event(name, **{last: value}))
    return data[:-size] + tail


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _text(value: bytes) -> bytes:
    return _varint(len(value)) + value


_TAILS: list[tuple[str, bytes]] = [
    *[
        (kind, tail)
        for kind in ("int", "long", "timestamp")
        for tail in (
            b"",
            b"\x80",
            b"\xff" * 9 + b"\x01",  # 10 bytes, the largest
            b"\xff" * 9 + b"\x02",  # beyond 64 bits
            b"\xff" * 10 + b"\x01",  # 11 bytes
            b"\x80" * 9 + b"\x00",  # 0, written long
            _varint(2**31 - 1),
            _varint(2**31),
            _varint(-(2**31)),
            _varint(-(2**31) - 1),
            _varint(2**63 - 1),
            _varint(-(2**63)),
            _varint(253402300799999999),  # datetime.max
            _varint(253402300800000000),
            _varint(-62135596800000000),  # datetime.min
            _varint(-62135596800000001),
            _varint(5) + b"\x00",  # trailing byte
        )
    ],
    *[
        ("string", tail)
        for tail in (
            b"",
            b"\x01",  # length -1
            b"\x03ab",  # length -2
            _varint(5) + b"abcd",
            _text("é✓😀".encode()),
            _text(b"\xff\xfe"),
            _text(b"\xed\xa0\x80"),  # an encoded surrogate
            _text(b"a\x00b"),
            _varint(2**62) + b"x",
            _varint(-(2**63)),
        )
    ],
    *[("boolean", bytes([b])) for b in (0, 1, 2, 255)],
    ("boolean", b""),
    *[("nullable", tail) for tail in (b"\x02" + _text(b"x"), b"\x04", b"\x01", b"\x02", b"")],
    *[
        ("json", _text(text))
        for text in (
            b"null",
            b' {"a" : [1, 2.5e3, -0, -0.0, true, false, null] } ',
            b'{"a":1,"a":2,"b":{}}',
            b'"\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/"',
            b'"\\ud800"',
            b'"\\x"',
            b'"tab\there"',
            b"[1e999]",
            b"-1e400",
            b"1e-400",
            b"NaN",
            b"-Infinity",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"123456789012345678901234567890",
            b"-9223372036854775808",
            b"[1,]",
            b'{"a":1,}',
            b"[" * 300 + b"]" * 300,
            b"[" * 5000 + b"]" * 5000,
            b"",
            b"   ",
            b"nulls",
            b'"\xff"',
            '"é"'.encode(),
        )
    ],
    *[
        (kind, tail)
        for kind, item in (("map-long", _varint(7)), ("map-string", _text(b"v")))
        for tail in (
            _varint(2) + _text(b"a") + item + _text(b"b") + item + b"\x00",
            _varint(-2) + _varint(8) + _text(b"a") + item + _text(b"b") + item + b"\x00",
            _varint(1) + _text(b"a") + item + _varint(1) + _text(b"a") + item + b"\x00",
            _varint(2) + _text(b"a") + item,
            _varint(2**62) + _text(b"a") + item + b"\x00",
            _varint(-(2**63)) + _varint(1) + b"\x00",
            _varint(-1) + b"\x80",
            _varint(3) + b"\x00",
        )
    ],
    *[("nullable-json", tail) for tail in (b"\x02" + _text(b"[]"), b"\x02" + _text(b"x"))],
]


@needs_extension
@pytest.mark.parametrize(("kind", "tail"), _TAILS, ids=[f"{k}-{t[:12]!r}" for k, t in _TAILS])
def test_crafted_field_bytes_decode_alike(kind: str, tail: bytes) -> None:
    _check_bytes(_with_tail(kind, tail))


@needs_extension
@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(_LAST)), st.binary(max_size=24))
def test_random_field_bytes_decode_alike(kind: str, tail: bytes) -> None:
    _check_bytes(_with_tail(kind, tail))


@needs_extension
def test_a_huge_block_count_is_truncated_without_allocating() -> None:
    data = _with_tail("map-long", _varint(2**62) + b"\x02a\x02\x00")
    with pytest.raises(DecodeError) as info:
        FAST.decode(data)
    assert info.value.reason == "truncated"


@needs_extension
def test_the_other_accepted_inputs() -> None:
    event = sample_event("TaskCompleted")
    data = FAST.encode(event)
    for value in (bytearray(data), memoryview(data), data):
        assert FAST.decode(value) == event
    for odd in (None, data.decode("latin-1"), b"", MAGIC, data[:HEADER_SIZE]):
        assert _decoded(FAST, odd) == _decoded(PURE, odd)


# --- the JSON fields: written and read in C where possible, by json otherwise ----------------


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", _shape(fn(value))
    except (ValueError, TypeError, RecursionError) as e:  # UnicodeError is a ValueError
        return type(e).__name__, str(e)


@needs_extension
@settings(max_examples=600, deadline=None)
@given(_ANY_JSON)
def test_json_written_in_c_is_dumps_json_exactly(value: Any) -> None:
    fast = codec_module._avro_fast.json_dumps
    assert _outcome(fast, value) == _outcome(codec_module.dumps_json, value)


def _loads_bytes(data: bytes) -> Any:
    return codec_module.loads_json(data.decode())


_SPACE = st.sampled_from(["", " ", "\n", "\t\r "])
_EDITS = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.sampled_from(["space", "byte", "cut"]),
        _SPACE,
        st.binary(min_size=1, max_size=2),
    ),
    max_size=3,
)


@needs_extension
@settings(max_examples=600, deadline=None)
@given(_ANY_JSON, st.text(max_size=20), _EDITS)
def test_json_read_in_c_is_loads_json_exactly(
    value: Any, other: str, edits: list[tuple[int, str, str, bytes]]
) -> None:
    try:
        text = codec_module.dumps_json(value)
    except (ValueError, TypeError, RecursionError):  # NaN, bad keys: some text instead
        text = other
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    for where, edit, space, junk in edits:  # whitespace between tokens, or damage
        at = where % (len(raw) + 1)
        if edit == "space":
            raw[at:at] = space.encode()
        elif edit == "byte":
            raw[at:at] = junk
        else:
            del raw[at:]
    fast = codec_module._avro_fast.json_loads
    assert _outcome(fast, bytes(raw)) == _outcome(_loads_bytes, bytes(raw))


@needs_extension
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('{}[]",:.-+eE0123456789 tfnulrsa\\/u\t\x01é'), max_size=24))
def test_json_like_text_reads_alike(text: str) -> None:
    fast = codec_module._avro_fast.json_loads
    assert _outcome(fast, text.encode()) == _outcome(_loads_bytes, text.encode())


@needs_extension
def test_decoded_keys_are_reused_never_confused() -> None:
    fast = codec_module._avro_fast.json_loads
    value = {f"k{i}": i for i in range(1000)} | {"é": 1, "x" * 40: 2, "": 3}
    text = codec_module.dumps_json(value).encode()
    for _ in range(2):  # far more keys than are kept: entries replace one another
        assert _shape(fast(text)) == _shape(codec_module.loads_json(text.decode()))
    first, second = fast(b'{"prompt":1}'), fast(b'{"prompt":2}')
    assert next(iter(first)) is next(iter(second))


# --- the program -----------------------------------------------------------------------------


@needs_extension
def test_programs_accept_only_writable_slots_of_the_class_itself() -> None:
    fast = codec_module._avro_fast

    class Plain:
        x: int

    @dataclasses.dataclass(slots=True)
    class Slotted:
        x: int

    @dataclasses.dataclass(slots=True)
    class Borrowing:
        x: int

    Borrowing.y = Slotted.__dict__["x"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not a slot"):
        fast.Record("Plain", Plain).set_fields([("x", fast.Type("int"))])
    with pytest.raises(TypeError, match="not a slot"):
        fast.Record("Borrowing", Borrowing).set_fields([("y", fast.Type("int"))])
    with pytest.raises(ValueError, match="unknown Avro type kind"):
        fast.Type("float")
    with pytest.raises(TypeError, match="inner Type"):
        fast.Type("array")
    record = fast.Record("Slotted", Slotted)
    record.set_fields([("x", fast.Type("int"))])
    header = MAGIC + struct.pack("<Q", 1)
    assert fast.encode(record, header, Slotted(5)) == header + b"\x0a"
    assert fast.decode(record, header + b"\x0a", HEADER_SIZE, HEADER_SIZE + 1) == (Slotted(5), 11)
