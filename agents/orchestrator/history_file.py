"""Histories as Avro object container files: one workflow per file.

The file is a standard Avro object container file (readable by any Avro
library) of :data:`HISTORY_SCHEMA` records, one per input, in decision order::

    HistoryEntry {
      input:            null | bytes   # the input event, Avro single-object encoded
      timer:            null | Timer   # or the timer that fired {workflow_id, timer_id, due_at}
      decided_at:       timestamp-micros  # the decision time the runner passed to handle
      idempotency_keys: map<string>    # a request's idempotency-key claim in its partition
      decisions:        array<bytes>   # the journal events recorded, single-object encoded
    }

Events are stored in the wire encoding of the topics (``C3 01`` + schema
fingerprint + body), so they decode with ``schemas/avro/*.avsc`` alone, in any
language, exactly as read from Kafka, and a file written before an event's
schema evolved still reads (through the codec's schema history). The file
metadata holds ``agentlog.history.format`` (:data:`FORMAT`),
``agentlog.history.workflow_id``, ``.definition``, ``.version``, ``.source``
and ``.note``. The sync marker derives from the content, so writing the same
history twice gives the same bytes (fixtures regenerate without churn).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.read import SchemaResolutionError

from agentlog.agents.orchestrator.inputs import INPUT_TYPES
from agentlog.errors import DecodeError, SchemaError
from agentlog.schemas.events import JOURNAL_EVENT_TYPES, Event
from agentlog.streams.codec import AvroCodec
from agentlog.workflow import Input, JournalEvent, TimerFired

from .history import History, HistoryEntry, HistoryError

#: Version of the file layout; a reader refuses files of a newer one.
FORMAT = "1"
#: Conventional file name suffix.
SUFFIX = ".avro"
RECORD_NAME = "agentlog.replay.HistoryEntry"

_META = "agentlog.history."
_JOURNAL_TYPES = frozenset(cls.__name__ for cls in JOURNAL_EVENT_TYPES)
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}

#: The record schema of a history file (one record per input).
HISTORY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "HistoryEntry",
    "namespace": "agentlog.replay",
    "doc": "One input of a recorded workflow history and the decisions recorded for it; "
    "records are in the order the orchestrator decided them.",
    "fields": [
        {
            "name": "input",
            "type": ["null", "bytes"],
            "default": None,
            "doc": "The input event (WorkflowRequested, CancelRequested, SignalSent, "
            "TaskCompleted, TaskFailed, TaskProgress, LockGranted or LockDenied) in Avro "
            "single-object encoding; null when a timer fired.",
        },
        {
            "name": "timer",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Timer",
                    "doc": "A durable timer that fired (derived from the workflow's state).",
                    "fields": [
                        {"name": "workflow_id", "type": "string"},
                        {
                            "name": "timer_id",
                            "type": "string",
                            "doc": "workflow-timeout, deadline:<task id>, retry:<task id> "
                            "or lock:<lock request id>",
                        },
                        {"name": "due_at", "type": _TIMESTAMP},
                    ],
                },
            ],
            "default": None,
        },
        {
            "name": "decided_at",
            "type": _TIMESTAMP,
            "doc": "The decision time the runner passed to the core (occurred_at of every "
            "decision).",
        },
        {
            "name": "idempotency_keys",
            "type": {"type": "map", "values": "string"},
            "default": {},
            "doc": "For a request: idempotency key -> workflow id that claimed it in the "
            "partition before this request was decided.",
        },
        {
            "name": "decisions",
            "type": {"type": "array", "items": "bytes"},
            "default": [],
            "doc": "The journal events recorded for this input, in order, in Avro "
            "single-object encoding; empty when it decided nothing.",
        },
    ],
}

_PARSED = fastavro.parse_schema(HISTORY_SCHEMA)


def dump_history(history: History, codec: AvroCodec | None = None) -> bytes:
    """The container-file bytes of ``history``.

    Raises:
        HistoryError: an input or decision does not fit its event schema.
    """
    codec = codec or AvroCodec.default()
    records = [_record(codec, i, entry) for i, entry in enumerate(history.entries)]
    metadata = {
        f"{_META}format": FORMAT,
        f"{_META}workflow_id": history.workflow_id,
        f"{_META}definition": history.definition or "",
        f"{_META}version": str(history.version or ""),
        f"{_META}source": history.source,
        f"{_META}note": history.note,
    }
    digest = hashlib.sha256(history.workflow_id.encode())
    for record in records:
        digest.update(record["input"] or b"")
        for decision in record["decisions"]:
            digest.update(decision)
    out = io.BytesIO()
    # the schema as written here (the parsed form's key order varies between processes)
    fastavro.writer(
        out, HISTORY_SCHEMA, records, metadata=metadata, sync_marker=digest.digest()[:16]
    )
    return out.getvalue()


def write_history(path: Path, history: History, codec: AvroCodec | None = None) -> None:
    """Write ``history`` to ``path`` (replaced atomically).

    Raises:
        HistoryError: naming the file, when it cannot be written or encoded.
    """
    data = dump_history(history, codec)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise HistoryError(f"{path}: cannot write it: {e}; check the directory") from None


def read_history(path: Path, codec: AvroCodec | None = None) -> History:
    """The history stored in ``path``.

    Raises:
        HistoryError: naming the file and the problem: unreadable, not an Avro
            container file, another schema or a newer format, an event of an
            unknown schema, or entries that are not a history.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HistoryError(f"{path}: cannot read it: {e.strerror or e}") from None
    try:
        return load_history(data, codec)
    except HistoryError as e:
        raise HistoryError(f"{path}: {e}") from None


def load_history(data: bytes, codec: AvroCodec | None = None) -> History:
    """The history stored in container-file bytes (see :func:`read_history`)."""
    codec = codec or AvroCodec.default()
    records, metadata = _read_container(data)
    fmt = metadata.get(f"{_META}format")
    if fmt != FORMAT:
        raise HistoryError(
            f"history format {fmt!r} is not one this agentlog reads ({FORMAT!r}); "
            "read it with the agentlog that wrote it, or export it again"
            if fmt is not None
            else f"no {_META}format in the file metadata: not an agentlog history"
        )
    workflow_id = metadata.get(f"{_META}workflow_id", "")
    if not workflow_id:
        raise HistoryError(f"no {_META}workflow_id in the file metadata")
    entries = tuple(_entry(codec, i, record, workflow_id) for i, record in enumerate(records))
    if not entries:
        raise HistoryError("the history holds no inputs")
    return History(
        workflow_id=workflow_id,
        entries=entries,
        source=metadata.get(f"{_META}source", ""),
        note=metadata.get(f"{_META}note", ""),
    )


def history_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.avro`` file in the directory ``path``, sorted."""
    if path.is_dir():
        return sorted(p for p in path.glob(f"*{SUFFIX}") if p.is_file())
    return [path]


# -- reading -------------------------------------------------------------------------


def _read_container(data: bytes) -> tuple[list[dict[str, Any]], dict[str, str]]:
    try:
        reader = fastavro.reader(io.BytesIO(data))
    except Exception as e:  # fastavro raises several types for a bad header
        raise HistoryError(
            f"not an Avro object container file ({type(e).__name__}: {e}); "
            "give a file written by `agentlog history --export`"
        ) from e
    name = reader.writer_schema.get("name") if isinstance(reader.writer_schema, dict) else None
    if name != RECORD_NAME:
        raise HistoryError(
            f"unknown schema: the file holds {name or reader.writer_schema!r} records, not "
            f"{RECORD_NAME}; give a file written by `agentlog history --export`"
        )
    metadata = {k: v for k, v in reader.metadata.items() if isinstance(v, str)}
    try:
        resolved = fastavro.reader(io.BytesIO(data), reader_schema=_PARSED)
        records: list[dict[str, Any]] = list(_records(resolved))
    except SchemaResolutionError as e:
        raise HistoryError(
            f"unknown schema: its {RECORD_NAME} records do not resolve: {e}"
        ) from None
    except Exception as e:  # truncated blocks, bad sync markers, corrupt data
        raise HistoryError(f"the file is corrupt: {type(e).__name__}: {e}") from e
    return records, metadata


def _records(reader: Any) -> Iterator[dict[str, Any]]:
    for record in reader:
        if not isinstance(record, dict):
            raise HistoryError(f"a record is a {type(record).__name__}, not a {RECORD_NAME}")
        yield record


def _entry(codec: AvroCodec, index: int, record: dict[str, Any], workflow_id: str) -> HistoryEntry:
    raw: bytes | None = record.get("input")
    timer: dict[str, Any] | None = record.get("timer")
    if (raw is None) == (timer is None):
        raise HistoryError(f"entry {index} has {'both' if raw else 'neither'} an input and a timer")
    item: Input
    if timer is not None:
        item = TimerFired(
            workflow_id=timer["workflow_id"], timer_id=timer["timer_id"], due_at=timer["due_at"]
        )
    else:
        assert raw is not None
        item = cast("Input", _decode(codec, raw, f"entry {index}: the input", INPUT_TYPES))
    if item.workflow_id != workflow_id:
        raise HistoryError(
            f"entry {index}: the input belongs to workflow {item.workflow_id!r}, not the "
            f"history's {workflow_id!r}"
        )
    decisions = tuple(
        cast("JournalEvent", _decode(codec, d, f"entry {index}: decision {n}", _JOURNAL_TYPES))
        for n, d in enumerate(record.get("decisions") or ())
    )
    return HistoryEntry(
        input=item,
        decided_at=record["decided_at"],
        decisions=decisions,
        idempotency_keys=dict(record.get("idempotency_keys") or {}),
    )


def _decode(codec: AvroCodec, data: bytes, what: str, allowed: frozenset[str]) -> Event:
    try:
        event = codec.decode(data)
    except DecodeError as e:
        if e.reason == "unknown_fingerprint":
            raise HistoryError(f"{what} has an unknown schema: {e.detail}") from None
        raise HistoryError(f"{what} cannot be decoded: {e}") from None
    if event.envelope.type not in allowed:
        raise HistoryError(f"{what} is a {event.envelope.type}, which cannot be there")
    return event


# -- writing -------------------------------------------------------------------------


def _record(codec: AvroCodec, index: int, entry: HistoryEntry) -> dict[str, Any]:
    item = entry.input
    timer: dict[str, Any] | None = None
    raw: bytes | None = None
    if isinstance(item, TimerFired):
        timer = {"workflow_id": item.workflow_id, "timer_id": item.timer_id, "due_at": item.due_at}
    else:
        raw = _encode(codec, item, f"entry {index}: the input")
    return {
        "input": raw,
        "timer": timer,
        "decided_at": entry.decided_at,
        "idempotency_keys": dict(entry.idempotency_keys),
        "decisions": [
            _encode(codec, d, f"entry {index}: decision {n}") for n, d in enumerate(entry.decisions)
        ],
    }


def _encode(codec: AvroCodec, event: Event | JournalEvent, what: str) -> bytes:
    try:
        return codec.encode(event)
    except SchemaError as e:
        raise HistoryError(f"{what} cannot be encoded: {e}") from None
