"""The Avro codec: round trips, byte-for-byte agreement with fastavro, interop, bad bytes."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog.errors import DecodeError, SchemaError
from agentlog.schemas import events as ev
from agentlog.schemas.catalogue import AvroType, SchemaCatalogue, bind
from agentlog.schemas.events import EVENT_TYPES, Event, new_envelope
from agentlog.streams import codec as codec_module
from agentlog.streams.codec import HEADER_SIZE, MAGIC, AvroCodec, fingerprint_of
from tests.support.samples import all_sample_events, sample_event

AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
CODEC = AvroCodec.default()
SAMPLES = all_sample_events() + all_sample_events(minimal=True)
SAMPLE_IDS = [
    f"{type(e).__name__}{'-minimal' if i >= len(EVENT_TYPES) else ''}"
    for i, e in enumerate(SAMPLES)
]


# --- an independent implementation of the spec's fingerprint, to check fastavro's -------

_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def rabin64(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification defines it."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def canonical(schema: Any, ns: str = "", seen: set[str] | None = None) -> str:
    """Parsing Canonical Form for the constructs agentlog schemas use."""
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        return "[" + ",".join(canonical(b, ns, seen) for b in schema) + "]"
    if isinstance(schema, str):
        full = schema if schema in _PRIMITIVES or "." in schema else f"{ns}.{schema}"
        return json.dumps(full, ensure_ascii=False)
    kind = schema["type"]
    if kind in _PRIMITIVES:
        return json.dumps(kind)
    if kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        return f'{{"type":"{kind}","{key}":{canonical(schema[key], ns, seen)}}}'
    name = schema["name"]
    full = name if "." in name else f"{schema.get('namespace', ns)}.{name}"
    if full in seen:
        return json.dumps(full)
    seen.add(full)
    inner = full.rpartition(".")[0]
    fields = ",".join(
        f'{{"name":{json.dumps(f["name"])},"type":{canonical(f["type"], inner, seen)}}}'
        for f in schema["fields"]
    )
    return f'{{"name":"{full}","type":"record","fields":[{fields}]}}'


def test_rabin_matches_the_spec_test_vector() -> None:
    # From the Avro specification / Java SchemaNormalization: fingerprint64 of "null".
    assert rabin64(b'"null"') == 0x63DD24E7CC258F8A
    assert fastavro.schema.fingerprint('"null"', "CRC-64-AVRO") == "8a8f25cce724dd63"


@pytest.mark.parametrize("name", list(EVENT_TYPES))
def test_header_is_magic_and_little_endian_rabin_of_canonical_form(name: str) -> None:
    raw = json.loads((AVRO_DIR / f"{name}.avsc").read_text(encoding="utf-8"))
    pcf = canonical(raw)
    assert pcf == fastavro.schema.to_parsing_canonical_form(raw)
    expected = rabin64(pcf.encode()).to_bytes(8, "little")
    data = CODEC.encode(sample_event(name))
    assert data[:2] == b"\xc3\x01" == MAGIC
    assert data[2:HEADER_SIZE] == expected == fingerprint_of(data)
    assert CODEC.catalogue.get(name).fingerprint == expected
    assert CODEC.type_name_of(data) == name


# --- round trips and agreement with fastavro ---------------------------------------------


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_every_event_round_trips(event: Event) -> None:
    data = CODEC.encode(event)
    assert CODEC.decode(data) == event
    assert CODEC.decode(bytearray(data)) == event
    assert CODEC.decode(memoryview(data)) == event
    assert CODEC.from_record(type(event).__name__, CODEC.to_record(event)) == event


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_compiled_encoding_equals_fastavro_byte_for_byte(event: Event) -> None:
    schema = CODEC.catalogue.get(type(event).__name__)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, CODEC.to_record(event))
    data = CODEC.encode(event)
    assert data[HEADER_SIZE:] == body.getvalue()
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema.parsed, None)
    assert CODEC.from_record(schema.name, record) == event


def test_json_fields_are_canonical_text() -> None:
    a = sample_event("SignalSent", payload={"b": [1, 2.5, None], "a": {"z": True, "y": "é"}})
    b = dataclasses.replace(a, payload={"a": {"y": "é", "z": True}, "b": [1, 2.5, None]})
    assert CODEC.encode(a) == CODEC.encode(b)
    assert CODEC.to_record(a)["payload"] == '{"a":{"y":"é","z":true},"b":[1,2.5,null]}'


def test_the_fast_path_does_not_use_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("fastavro called on the hot path")

    monkeypatch.setattr(fastavro, "schemaless_writer", forbidden)
    monkeypatch.setattr(fastavro, "schemaless_reader", forbidden)
    for event in SAMPLES:
        assert CODEC.decode(CODEC.encode(event)) == event


# --- interop: plain fastavro with nothing but the .avsc file -----------------------------


def plain_schema(name: str) -> tuple[Any, bytes]:
    """(parsed schema, single-object header) from the schema file alone."""
    with (AVRO_DIR / f"{name}.avsc").open(encoding="utf-8") as f:
        raw = json.load(f)
    fp = fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(raw), "CRC-64-AVRO")
    # fastavro's hex already lists the fingerprint's bytes little-endian first.
    return fastavro.parse_schema(raw), b"\xc3\x01" + bytes.fromhex(fp)


def plain_encode(name: str, record: dict[str, Any]) -> bytes:
    schema, header = plain_schema(name)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return header + body.getvalue()


AT = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
AT_MICROS = 1741064767890123


def test_plain_fastavro_producer_to_agentlog_consumer() -> None:
    # What a producer in another language builds: plain values, JSON as (any) text.
    record = {
        "envelope": {
            "event_id": "6f9b2c1e-0d1a-4c7e-9a55-3b2f4c5d6e7f",
            "type": "WorkflowRequested",
            "occurred_at": AT_MICROS,
            "key": "wf-42",
            "causation_id": None,
            "correlation_id": "6f9b2c1e-0d1a-4c7e-9a55-3b2f4c5d6e7f",
            "traceparent": None,
            "source": "billing-service",
        },
        "workflow_id": "wf-42",
        "definition": "invoice-review",
        "version": None,
        "spec": None,
        "input": '{ "invoice": "INV-7", "amount": 12.5 }',
        "priority": 5,
        "idempotency_key": "INV-7",
        "labels": {"team": "billing"},
    }
    event = CODEC.decode(plain_encode("WorkflowRequested", record))
    assert event == ev.WorkflowRequested(
        envelope=ev.Envelope(
            event_id="6f9b2c1e-0d1a-4c7e-9a55-3b2f4c5d6e7f",
            type="WorkflowRequested",
            occurred_at=AT,
            key="wf-42",
            correlation_id="6f9b2c1e-0d1a-4c7e-9a55-3b2f4c5d6e7f",
            source="billing-service",
        ),
        workflow_id="wf-42",
        definition="invoice-review",
        input={"invoice": "INV-7", "amount": 12.5},
        priority=5,
        idempotency_key="INV-7",
        labels={"team": "billing"},
    )


@pytest.mark.parametrize("name", list(EVENT_TYPES))
def test_plain_fastavro_round_trips_every_event_with_agentlog(name: str) -> None:
    event = sample_event(name)
    schema, header = plain_schema(name)
    data = CODEC.encode(event)
    assert data[:HEADER_SIZE] == header
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema, None)
    assert record["envelope"]["event_id"] == event.envelope.event_id
    assert record["envelope"]["type"] == name
    assert CODEC.decode(plain_encode(name, record)) == event


def test_agentlog_producer_to_plain_fastavro_consumer() -> None:
    event = sample_event("TaskRequested")
    assert isinstance(event, ev.TaskRequested)
    data = CODEC.encode(event)
    schema, header = plain_schema("TaskRequested")
    assert data.startswith(header)
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema, None)
    assert record["task_id"] == event.task_id
    assert json.loads(record["input"]) == event.input
    assert record["deadline"] == event.deadline
    assert record["envelope"]["occurred_at"] == event.envelope.occurred_at
    assert record["fencing_tokens"] == dict(event.fencing_tokens)


# --- bad bytes ----------------------------------------------------------------------------


def _reason(data: Any) -> str:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    return info.value.reason


def test_short_and_empty_input_is_truncated() -> None:
    assert _reason(None) == "truncated"
    assert _reason("c301 is text, not bytes") == "corrupt_body"
    assert _reason(b"") == "truncated"
    assert _reason(b"\xc3\x01\x00") == "truncated"


@pytest.mark.parametrize("event", SAMPLES[: len(EVENT_TYPES)], ids=list(EVENT_TYPES))
def test_every_prefix_of_an_event_is_truncated(event: Event) -> None:
    data = CODEC.encode(event)
    for cut in range(len(data)):
        assert _reason(data[:cut]) == "truncated", cut


def test_bad_magic_unknown_fingerprint_and_trailing_bytes() -> None:
    data = CODEC.encode(sample_event("LockGranted"))
    assert _reason(b'{"json": "not avro"}') == "bad_magic"
    assert _reason(b"\xc3\x02" + data[2:]) == "bad_magic"
    assert _reason(b"\xc3\x01" + struct.pack("<Q", 12345) + data[10:]) == "unknown_fingerprint"
    assert _reason(data + b"\x00") == "corrupt_body"
    with pytest.raises(DecodeError, match="fingerprint 3930000000000000"):
        CODEC.decode(b"\xc3\x01" + struct.pack("<Q", 12345) + data[10:])


def _lock_released(**envelope: Any) -> bytes:
    header = MAGIC + CODEC.catalogue.get("LockReleased").fingerprint
    env = {
        "event_id": "e",
        "type": "LockReleased",
        "occurred_at": 0,
        "key": "r",
        "causation_id": None,
        "correlation_id": "c",
        "traceparent": None,
        "source": "s",
        **envelope,
    }
    record = {"envelope": env, "resource": "r", "request_id": "q", "fencing_token": 1}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, CODEC.catalogue.get("LockReleased").parsed, record)
    return header + body.getvalue()


def test_corrupt_bodies() -> None:
    good = _lock_released()
    assert CODEC.decode(good).envelope.key == "r"
    # envelope = event_id "e" (02 65), type (18 + 12 bytes), occurred_at 0 (00), key "r"
    # (02 72), then the causation_id union index at offset 10 + 2 + 13 + 1 + 2 = 28.
    union_at = HEADER_SIZE + 2 + 13 + 1 + 2
    assert good[union_at] == 0
    assert _reason(good[:union_at] + b"\x04" + good[union_at + 1 :]) == "corrupt_body"
    assert _reason(good[:HEADER_SIZE] + b"\x01" + good[HEADER_SIZE + 1 :]) == "corrupt_body"
    assert _reason(good[: HEADER_SIZE + 1] + b"\xff" + good[HEADER_SIZE + 2 :]) == "corrupt_body"
    assert _reason(_lock_released(type="LockExpired")) == "corrupt_body"
    overlong = good[:HEADER_SIZE] + b"\x82" + b"\x80" * 10 + b"\x00" + good[HEADER_SIZE + 1 :]
    assert _reason(overlong) == "corrupt_body"


@pytest.mark.parametrize("text", ["{not json", "NaN", '{"x": Infinity}', '"a" "b"', "[1e999]"])
def test_invalid_json_text_is_corrupt(text: str) -> None:
    record = CODEC.to_record(sample_event("SignalReceived"))
    record["payload"] = text
    with pytest.raises(DecodeError, match="corrupt_body") as info:
        CODEC.decode(plain_encode("SignalReceived", record))
    assert info.value.reason == "corrupt_body"


def test_int_field_out_of_range_is_corrupt() -> None:
    record = CODEC.to_record(sample_event("LockQueued"))
    record["position"] = 2**40  # fastavro writes any long into an int
    assert _reason(plain_encode("LockQueued", record)) == "corrupt_body"


def test_decode_as_checks_the_type() -> None:
    data = CODEC.encode(sample_event("LockGranted"))
    assert isinstance(CODEC.decode_as(data, ev.LockGranted), ev.LockGranted)
    with pytest.raises(DecodeError) as info:
        CODEC.decode_as(data, ev.LockDenied)
    assert info.value.reason == "unexpected_type"
    with pytest.raises(DecodeError) as info:
        CODEC.type_name_of(b"\xc3\x01" + b"\x00" * 8)
    assert info.value.reason == "unknown_fingerprint"


# --- bad events ----------------------------------------------------------------------------


def test_encode_names_the_bad_field() -> None:
    event = sample_event("TaskRequested")
    cases = {
        "attempt": ("one", "field attempt of agentlog.TaskRequested"),
        "deadline": (datetime(2025, 1, 1), "can't subtract offset-naive"),
        "input": ({1, 2}, "not JSON serializable"),
        "priority": (2**31, "does not fit an Avro int"),
        "workflow_id": (None, "field workflow_id"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(SchemaError, match=message):
            CODEC.encode(dataclasses.replace(event, **{name: value}))  # type: ignore[arg-type]
    bad_envelope = dataclasses.replace(event.envelope, source=b"bytes")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"field source of agentlog\.Envelope"):
        CODEC.encode(dataclasses.replace(event, envelope=bad_envelope))
    with pytest.raises(SchemaError, match="not JSON"):
        CODEC.encode(dataclasses.replace(event, input={"x": math.nan}))


def test_encode_rejects_non_events_and_mismatched_types() -> None:
    with pytest.raises(SchemaError, match="not an agentlog event"):
        CODEC.encode(ev.TaskUsage())  # type: ignore[arg-type]
    event = sample_event("CancelRequested")
    wrong = dataclasses.replace(event, envelope=new_envelope("SignalSent", "k", source="t"))
    with pytest.raises(SchemaError, match="must be 'CancelRequested'"):
        CODEC.encode(wrong)
    with pytest.raises(SchemaError, match="unknown event"):
        CODEC.from_record("Nope", {})
    with pytest.raises(SchemaError, match="not a valid CancelRequested"):
        CODEC.from_record("CancelRequested", {"workflow_id": "wf"})


# --- earlier schema versions ---------------------------------------------------------------


def test_data_of_an_earlier_schema_version_is_resolved(tmp_path: Path) -> None:
    current = CODEC.catalogue.get("TaskProgress").schema
    older = json.loads(json.dumps(current))
    older["fields"] = [f for f in older["fields"] if f["name"] not in ("fraction", "message")]
    (tmp_path / "history").mkdir()
    (tmp_path / "TaskProgress.avsc").write_text(json.dumps(current), encoding="utf-8")
    (tmp_path / "history" / "TaskProgress-1.avsc").write_text(json.dumps(older), "utf-8")
    codec = AvroCodec(SchemaCatalogue.from_directory(tmp_path))
    [old] = codec.catalogue.history()
    event = sample_event("TaskProgress")
    record = {k: v for k, v in CODEC.to_record(event).items() if k in ("envelope", "task_id",
              "workflow_id", "step", "attempt", "agent_id")}  # fmt: skip
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old.parsed, record)
    data = MAGIC + old.fingerprint + body.getvalue()
    assert codec.decode(data) == dataclasses.replace(event, fraction=None, message="")
    with pytest.raises(DecodeError, match="truncated"):
        codec.decode(data[:-3])
    with pytest.raises(DecodeError, match="corrupt_body"):
        codec.decode(data + b"\x00")


# --- properties -----------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _strategy(t: AvroType, top: str | None = None) -> st.SearchStrategy[Any]:
    """Values of any agentlog Avro type, built from the bound schema."""
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=20),
        "string": st.text(max_size=20),
        "json": _JSON,
        "timestamp": st.datetimes(timezones=st.just(UTC)),
    }
    if t.kind in simple:
        return simple[t.kind]
    if t.kind == "nullable":
        return st.none() | _strategy(t.inner)
    if t.kind == "array":
        return st.lists(_strategy(t.inner), max_size=3).map(tuple)
    if t.kind == "map":
        return st.dictionaries(st.text(max_size=8), _strategy(t.inner), max_size=3)
    fields = {name: _strategy(ft) for name, ft in t.inner.fields}
    if top is not None:  # the envelope's type must name the event
        fields["envelope"] = fields["envelope"].map(lambda e: dataclasses.replace(e, type=top))
    return st.builds(t.inner.cls, **fields)


def _event_strategy(name: str) -> st.SearchStrategy[Any]:
    return _strategy(AvroType("record", bind(CODEC.catalogue.get(name))[0]), top=name)


EVENTS = st.sampled_from(list(EVENT_TYPES)).flatmap(_event_strategy)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_any_event_round_trips_and_matches_fastavro(event: Event) -> None:
    data = CODEC.encode(event)
    assert CODEC.decode(data) == event
    body = io.BytesIO()
    schema = CODEC.catalogue.get(type(event).__name__)
    fastavro.schemaless_writer(body, schema.parsed, CODEC.to_record(event))
    assert data[HEADER_SIZE:] == body.getvalue()


def _decode_like_fastavro(data: bytes) -> None:
    """Decode; where agentlog accepts the bytes, fastavro must read the same event."""
    try:
        event = CODEC.decode(data)
    except DecodeError:
        return
    schema = CODEC.catalogue.get(type(event).__name__)
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), schema.parsed, None)
    assert CODEC.from_record(schema.name, record) == event


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    _decode_like_fastavro(data)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(EVENT_TYPES)), st.binary(max_size=200))
def test_random_bodies_only_raise_decode_error(name: str, body: bytes) -> None:
    _decode_like_fastavro(MAGIC + CODEC.catalogue.get(name).fingerprint + body)


def mutated(encoded: bytes, data: st.DataObject) -> bytes:
    """``encoded`` with 1-4 bytes of its body flipped, set, inserted or deleted."""
    raw = bytearray(encoded)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(HEADER_SIZE, len(raw)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        if op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif at < len(raw) and op == "delete":
            del raw[at : at + data.draw(st.integers(1, 4))]
        elif at < len(raw):
            raw[at] = raw[at] ^ 0xFF if op == "flip" else data.draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_events_only_raise_decode_error(event: Event, data: st.DataObject) -> None:
    _decode_like_fastavro(mutated(CODEC.encode(event), data))


def test_timestamps_keep_microseconds_across_the_whole_range() -> None:
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for at in (datetime(1, 1, 1, tzinfo=UTC), last, before_epoch, AT):
        event = sample_event("StepTimedOut", deadline=at)
        assert CODEC.decode(CODEC.encode(event)) == event
        assert CODEC.decode(CODEC.encode(event)).deadline.tzinfo is UTC  # type: ignore[union-attr]
    assert AT - timedelta(microseconds=AT_MICROS) == datetime(1970, 1, 1, tzinfo=UTC)


# --- docs/events.md stays true ------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_documented_worked_example_is_what_the_codec_writes() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("### Worked example", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    leading_hex = (re.match(r"((?:[0-9a-f]{2} )*[0-9a-f]{2})", line) for line in block.splitlines())
    documented = bytes.fromhex(" ".join(m[1] for m in leading_hex if m))
    event_id = "0f8c3b52-6d7e-4b1a-9c2d-3e4f5a6b7c8d"
    event = ev.WorkflowRequested(
        envelope=ev.Envelope(
            event_id=event_id,
            type="WorkflowRequested",
            occurred_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            key="wf-1",
            correlation_id=event_id,
            source="shell",
        ),
        workflow_id="wf-1",
        definition="hello",
        input={"name": "Ada"},
    )
    assert CODEC.encode(event) == documented
    assert CODEC.decode(documented) == event
    python = text.split("With Python and fastavro alone:\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(python.replace('open("schemas/', f'open("{AVRO_DIR.parent}/'), namespace)
    decoded = CODEC.decode(namespace["value"])
    assert isinstance(decoded, ev.WorkflowRequested)
    assert decoded.input == {"name": "Ada"}


# --- the JSON fields: the cached C encoder and the scanner fast path ----------------------

_REFERENCE_DUMPS = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
).encode


def _reference_loads(text: str) -> Any:
    def constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"{text} is out of range for a JSON number")
        return value

    return json.JSONDecoder(parse_constant=constant, parse_float=finite).decode(text)


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(value)
    except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
        return type(e).__name__, str(e)


_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: both must refuse them alike
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers() | st.booleans(), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_ANY_JSON)
def test_dumps_json_is_the_json_encoder_exactly(value: Any) -> None:
    assert _outcome(codec_module.dumps_json, value) == _outcome(_REFERENCE_DUMPS, value)


@settings(max_examples=500, deadline=None)
@given(
    _ANY_JSON.map(lambda v: _outcome(_REFERENCE_DUMPS, v)[1]),
    st.sampled_from(["", " ", "\n\t", "x", " 1", ",", "]"]),
    st.sampled_from(["", " ", "\r\n"]),
)
def test_loads_json_is_the_strict_decoder_exactly(text: str, suffix: str, prefix: str) -> None:
    for candidate in (text, prefix + text + suffix, text[: len(text) // 2], "NaN", "[1e999]"):
        assert _outcome(codec_module.loads_json, candidate) == _outcome(_reference_loads, candidate)


def test_cyclic_json_is_a_schema_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(SchemaError, match="field input"):
        CODEC.encode(dataclasses.replace(sample_event("TaskRequested"), input=cyclic))
