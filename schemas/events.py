"""The event contract as Python values: one frozen dataclass per Avro schema.

Every class mirrors ``schemas/avro/<Name>.avsc`` field for field, in the same
order (a unit test holds them together). Field semantics are documented in the
``doc`` attributes of the schema files and in ``docs/events.md``.

Value conventions:

* JSON-valued fields (``"logicalType": "agentlog.json"`` in the schema) hold
  the decoded Python value (:data:`JsonValue`), never the JSON text. For an
  optional JSON field, ``None`` means "absent" and is written as Avro null.
* Timestamps are timezone-aware UTC :class:`~datetime.datetime` values with
  microsecond precision.
* Maps are typed ``Mapping[str, …]`` (decoded as ``dict``); Avro arrays are tuples.

Classes are keyword-only so that fields can be added (with defaults) without
breaking callers. This module is pure: it imports neither fastavro nor Kafka.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TypeAlias, get_args

from agentlog.errors import SchemaError
from agentlog.schemas.slots import install_slot_init

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value :func:`json.dumps` accepts and :func:`json.loads` returns."""

JsonObject: TypeAlias = "dict[str, JsonValue]"

PRIORITY_MIN = 1
PRIORITY_MAX = 5
PRIORITY_DEFAULT = 3

#: Namespace of deterministic event ids; never change it, recorded ids depend on it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c9a52-3d3b-4c1e-9a57-5b0c2e8d4a10")


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Metadata every event carries (the ``agentlog.Envelope`` record).

    Attributes:
        event_id: UUID of the event; derived with :func:`derive_event_id` for decisions.
        type: the event name, e.g. ``"WorkflowRequested"``.
        occurred_at: when it happened (aware UTC datetime).
        key: the partition key: workflow id, lock resource or agent id.
        causation_id: ``event_id`` of the event that caused this one.
        correlation_id: shared by every event of one conversation.
        traceparent: W3C Trace Context ``traceparent`` value.
        source: the producing service or client.
    """

    event_id: str
    type: str
    occurred_at: datetime
    key: str
    causation_id: str | None = None
    correlation_id: str
    traceparent: str | None = None
    source: str


# --- requests -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRequested:
    """A client asks to start a workflow, by definition name or with an inline spec."""

    envelope: Envelope
    workflow_id: str
    definition: str | None = None
    version: int | None = None
    spec: JsonValue = None
    input: JsonValue
    priority: int = PRIORITY_DEFAULT
    idempotency_key: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested:
    """A client asks to cancel a running workflow."""

    envelope: Envelope
    workflow_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSent:
    """A client (often a human in the loop) sends a named signal to a workflow."""

    envelope: Envelope
    workflow_id: str
    signal: str
    payload: JsonValue


# --- journal: the orchestrator's decisions ------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStarted:
    """The orchestrator accepted a request; ``spec`` is the full spec it runs."""

    envelope: Envelope
    workflow_id: str
    definition: str
    version: int
    spec: JsonValue
    input: JsonValue
    priority: int = PRIORITY_DEFAULT
    request_event_id: str
    idempotency_key: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRejected:
    """The orchestrator refused a request (invalid, unknown definition, duplicate)."""

    envelope: Envelope
    workflow_id: str
    reason: str
    request_event_id: str
    request: JsonValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepScheduled:
    """The orchestrator decided to run an attempt of a step; a TaskRequested follows."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    attempt: int
    agent_kind: str
    input: JsonValue
    deadline: datetime | None = None
    priority: int = PRIORITY_DEFAULT
    fencing_tokens: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted:
    """A step attempt succeeded with ``output``."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    attempt: int
    output: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed:
    """A step attempt failed; ``retryable`` says whether a retry may help."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    attempt: int
    error_kind: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetryScheduled:
    """A durable timer: attempt ``next_attempt`` of the step runs at ``retry_at``."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    attempt: int
    next_attempt: int
    retry_at: datetime
    backoff_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTimedOut:
    """A step attempt passed its ``deadline`` by the orchestrator's recorded clock."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    attempt: int
    deadline: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAwaited:
    """A step waits for a lock on ``resource`` before it is scheduled."""

    envelope: Envelope
    workflow_id: str
    step: str
    resource: str
    request_id: str
    task_id: str = ""
    ttl_ms: int = 60_000
    wait_timeout_ms: int = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAcquired:
    """A step attempt holds a lock: the grant arrived, its fencing token is recorded."""

    envelope: Envelope
    workflow_id: str
    step: str
    task_id: str
    resource: str
    request_id: str
    fencing_token: int
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalReceived:
    """The orchestrator delivered a signal to a workflow."""

    envelope: Envelope
    workflow_id: str
    signal: str
    payload: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSucceeded:
    """A workflow finished with ``output`` (terminal)."""

    envelope: Envelope
    workflow_id: str
    output: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowFailed:
    """A workflow failed (terminal); ``step`` is None for workflow-level failures."""

    envelope: Envelope
    workflow_id: str
    step: str | None = None
    error_kind: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowCancelled:
    """A workflow was cancelled (terminal)."""

    envelope: Envelope
    workflow_id: str
    reason: str = ""


# --- tasks and responses -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRequested:
    """Work for an agent of ``agent_kind``, published on ``tasks.<agent_kind>``."""

    envelope: Envelope
    task_id: str
    workflow_id: str
    step: str
    attempt: int
    agent_kind: str
    input: JsonValue
    deadline: datetime | None = None
    idempotency_key: str
    priority: int = PRIORITY_DEFAULT
    fencing_tokens: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCancelled:
    """The task is no longer wanted (its workflow ended); on ``tasks.<agent_kind>``.

    Published by the orchestrator after the task's ``TaskRequested``, on the same
    partition; its event id is ``derive_event_id(<StepScheduled event id>, 1)``,
    so a re-publish is the same event. Agents drop a waiting task and cancel a
    running one.
    """

    envelope: Envelope
    task_id: str
    workflow_id: str
    step: str
    attempt: int
    agent_kind: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUsage:
    """What one task consumed (the ``agentlog.TaskUsage`` record)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted:
    """An agent finished a task with ``output``."""

    envelope: Envelope
    task_id: str
    workflow_id: str
    step: str
    attempt: int
    output: JsonValue
    usage: TaskUsage = TaskUsage()
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """An agent failed a task; ``retryable`` False makes the failure terminal."""

    envelope: Envelope
    task_id: str
    workflow_id: str
    step: str
    attempt: int
    error_kind: str
    message: str
    retryable: bool
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProgress:
    """An agent reports progress; ``fraction`` is 0.0-1.0 or None when unknown."""

    envelope: Envelope
    task_id: str
    workflow_id: str
    step: str
    attempt: int
    fraction: float | None = None
    message: str = ""
    agent_id: str


# --- locks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRequested:
    """Ask the lock manager for a lease of ``ttl_ms`` on ``resource``."""

    envelope: Envelope
    resource: str
    request_id: str
    requester: str
    ttl_ms: int
    wait_timeout_ms: int
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockReleaseRequested:
    """A command: the holder gives its lease back, or a waiter withdraws its request.

    The lock manager decides it: ``LockReleased`` (and the hand-over) for the
    current lease, ``LockDenied`` (cancelled) for a waiter, nothing otherwise.
    ``fencing_token`` 0 matches whatever the request was granted.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRenewRequested:
    """A command: the holder asks for its lease to end ``ttl_ms`` after the manager decides.

    The lock manager decides ``LockRenewed`` if the lease is still valid by its
    clock, nothing otherwise. ``fencing_token`` 0 matches the request's lease.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int = 0
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockGranted:
    """A lease with a fencing token that strictly increases per resource."""

    envelope: Envelope
    resource: str
    request_id: str
    requester: str
    fencing_token: int
    lease_expires_at: datetime
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockQueued:
    """The request waits at ``position`` (1 is next) behind the holder."""

    envelope: Envelope
    resource: str
    request_id: str
    requester: str
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockDenied:
    """The request was refused (wait timeout, invalid request)."""

    envelope: Envelope
    resource: str
    request_id: str
    requester: str
    reason: str
    workflow_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRenewed:
    """The lock manager extended a held lease to ``lease_expires_at`` (a decision).

    Deprecated interim encoding, still accepted: a ``LockRenewed`` whose
    ``envelope.source`` is not ``"lock-manager"`` is a renew command; send
    :class:`LockRenewRequested` instead.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LockReleased:
    """The lock manager ended a lease its holder released (a decision).

    Deprecated interim encoding, still accepted: a ``LockReleased`` whose
    ``envelope.source`` is not ``"lock-manager"`` is a release command; send
    :class:`LockReleaseRequested` instead.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockExpired:
    """A lease ran out by the lock manager's recorded clock."""

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int


# --- cache, agents, dead letters ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """An agent's cache counters over ``[window_start, window_end)``; latencies are means."""

    envelope: Envelope
    agent_id: str
    agent_kind: str = ""
    window_start: datetime
    window_end: datetime
    hits: int
    misses: int
    hit_latency_ms: float
    miss_latency_ms: float
    bytes: int
    evictions: int
    tokens_saved: int
    backend: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRegistered:
    """An agent process joined the pool of ``agent_kind``."""

    envelope: Envelope
    agent_id: str
    agent_kind: str
    host: str
    pid: int
    concurrency: int
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentHeartbeat:
    """An agent process is alive and runs ``in_flight`` of ``capacity`` tasks."""

    envelope: Envelope
    agent_id: str
    agent_kind: str
    in_flight: int
    capacity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDeregistered:
    """An agent process left its pool."""

    envelope: Envelope
    agent_id: str
    agent_kind: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentKindCircuitChanged:
    """An orchestrator's breaker for ``agent_kind`` changed state (key ``circuit:<kind>``)."""

    envelope: Envelope
    agent_kind: str
    state: str
    consecutive_failures: int
    retry_at: datetime | None = None
    reason: str = ""
    orchestrator: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterHeader:
    """One Kafka record header (the ``agentlog.DeadLetterHeader`` record)."""

    key: str
    value: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record a consumer could not decode or handle, kept byte for byte for redrive."""

    envelope: Envelope
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: bytes | None = None
    original_timestamp: datetime | None = None
    error_reason: str
    error: str
    raw: bytes
    headers: tuple[DeadLetterHeader, ...] = ()
    consumer_group: str


Event: TypeAlias = (
    WorkflowRequested
    | CancelRequested
    | SignalSent
    | WorkflowStarted
    | WorkflowRejected
    | StepScheduled
    | StepCompleted
    | StepFailed
    | StepRetryScheduled
    | StepTimedOut
    | LockAwaited
    | LockAcquired
    | SignalReceived
    | WorkflowSucceeded
    | WorkflowFailed
    | WorkflowCancelled
    | TaskRequested
    | TaskCancelled
    | TaskCompleted
    | TaskFailed
    | TaskProgress
    | LockRequested
    | LockReleaseRequested
    | LockRenewRequested
    | LockGranted
    | LockQueued
    | LockDenied
    | LockRenewed
    | LockReleased
    | LockExpired
    | CacheStats
    | AgentRegistered
    | AgentHeartbeat
    | AgentDeregistered
    | AgentKindCircuitChanged
    | DeadLetter
)

_TOPIC_FAMILIES = {
    "requests": "WorkflowRequested CancelRequested SignalSent",
    "journal": "WorkflowStarted WorkflowRejected StepScheduled StepCompleted StepFailed "
    "StepRetryScheduled StepTimedOut LockAwaited LockAcquired SignalReceived WorkflowSucceeded "
    "WorkflowFailed WorkflowCancelled",
    "tasks": "TaskRequested TaskCancelled",
    "responses": "TaskCompleted TaskFailed TaskProgress",
    "locks": "LockRequested LockReleaseRequested LockRenewRequested LockGranted LockQueued "
    "LockDenied LockRenewed LockReleased LockExpired",
    "cache": "CacheStats",
    "agents": "AgentRegistered AgentHeartbeat AgentDeregistered AgentKindCircuitChanged",
    "deadletter": "DeadLetter",
}

#: Event name -> the topic family it is published on, for ``Settings.topic(family)``
#: (``tasks`` is really ``tasks.<agent_kind>``); equal to each schema's
#: ``agentlog.topic`` attribute.
EVENT_TOPIC: dict[str, str] = {
    name: family for family, names in _TOPIC_FAMILIES.items() for name in names.split()
}

#: Event name -> other topic families that carry copies of it. The lock manager
#: copies its decisions on workflow steps' lock requests to ``responses`` (keyed
#: by workflow id), where the orchestrator reads them; the copy is the same event
#: (same ``event_id``), so whoever reads both topics can drop one.
EVENT_COPIES: dict[str, tuple[str, ...]] = {
    "LockGranted": ("responses",),
    "LockDenied": ("responses",),
}

#: Avro full name -> class for the records nested inside events.
NESTED_RECORD_TYPES: dict[str, type[Envelope | TaskUsage | DeadLetterHeader]] = {
    "agentlog.Envelope": Envelope,
    "agentlog.TaskUsage": TaskUsage,
    "agentlog.DeadLetterHeader": DeadLetterHeader,
}

#: Event name -> class, one entry per ``.avsc`` file.
EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in get_args(Event)}

# Every event and nested record is built through an __init__ that fills its slots
# directly (agentlog.schemas.slots): about half the cost of the dataclass's own.
for _cls in (*EVENT_TYPES.values(), *NESTED_RECORD_TYPES.values()):
    install_slot_init(_cls)
del _cls

#: The classes of the journal's events (topic family ``journal``), in catalogue order.
JOURNAL_EVENT_TYPES: tuple[type[Event], ...] = tuple(
    cls for name, cls in EVENT_TYPES.items() if EVENT_TOPIC[name] == "journal"
)


def _py_utc_now() -> datetime:
    """The current time as an aware UTC datetime (``datetime.now(UTC)``)."""
    return datetime.now(UTC)


def _py_fill_envelope(envelope: Envelope, values: tuple[object, ...]) -> None:
    for setter, value in zip(_ENVELOPE_SETTERS, values, strict=True):
        setter(envelope, value)


#: Slot setters of Envelope's fields, in field order (for :func:`new_envelope`).
_ENVELOPE_SETTERS = tuple(Envelope.__dict__[f.name].__set__ for f in fields(Envelope))

#: The current time as an aware UTC datetime: every new envelope's ``occurred_at``
#: and the runners' default clock.
utc_now: Callable[[], datetime]
_fill_envelope: Callable[[Envelope, tuple[object, ...]], None]
try:  # schemas/_slots.pyx: the clock and the envelope's slots in C
    from agentlog.schemas import _slots
except ImportError:  # built without a C compiler
    utc_now, _fill_envelope = _py_utc_now, _py_fill_envelope
else:
    utc_now = _slots.utc_now
    _fill_envelope = _slots.SlotFiller(Envelope, tuple(f.name for f in fields(Envelope))).fill


def derive_event_id(parent_event_id: str, index: int) -> str:
    """The deterministic id of the ``index``-th event decided from ``parent_event_id``.

    A re-decision after a crash derives the same ids, so duplicates are
    recognisable downstream.

    Args:
        parent_event_id: ``event_id`` of the input event the decision was made from.
        index: position of the event among the decision's outputs, from 0.

    Returns:
        A UUIDv5 string, stable across processes and versions.
    """
    digest = hashlib.sha1(  # noqa: S324 - UUIDv5 is defined on SHA-1; not a security use
        _NAMESPACE_BYTES + f"{parent_event_id}/{index}".encode()
    ).digest()
    return _uuid_text(digest, 0x50)


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def _py_uuid_text(raw: bytes, version: int) -> str:
    """The canonical text of a UUID from 16+ bytes, with ``version`` (0x40, 0x50) and variant set.

    Equal to ``str(uuid.UUID(bytes=raw[:16], version=...))`` (a test checks it), without
    building ``UUID`` objects: event ids are made for every event.
    """
    b = bytearray(raw[:16])
    b[6] = (b[6] & 0x0F) | version
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _py_random_event_id() -> str:
    """A random UUIDv4 string (what ``str(uuid.uuid4())`` gives, about 3x cheaper)."""
    return _py_uuid_text(os.urandom(16), 0x40)


try:  # the compiled equivalents (schemas/_ids.pyx): ~10x cheaper again
    from agentlog.schemas._ids import random_uuid4_text as _c_random
    from agentlog.schemas._ids import uuid_text as _c_text
except ImportError:  # built without a C compiler
    _uuid_text, random_event_id = _py_uuid_text, _py_random_event_id
else:
    _uuid_text, random_event_id = _c_text, _c_random


def new_envelope(
    type_name: str,
    key: str,
    *,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: str | None = None,
    traceparent: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """Build an envelope for a new event.

    Args:
        type_name: the event name, e.g. ``"WorkflowRequested"``.
        key: the partition key (workflow id, resource, agent id).
        source: the producing service or client.
        correlation_id: defaults to the new event's own id (a new conversation).
        causation_id: ``event_id`` of the causing event, if any.
        event_id: defaults to a random UUIDv4.
        traceparent: W3C ``traceparent`` to propagate, if any.
        occurred_at: an aware datetime; defaults to now. Stored as UTC.

    Raises:
        SchemaError: ``type_name`` is not an event, or ``occurred_at`` is naive.
    """
    if type_name not in EVENT_TYPES:
        raise SchemaError(
            f"unknown event type {type_name!r}; use one of {', '.join(sorted(EVENT_TYPES))}"
        )
    if occurred_at is None:
        occurred_at = utc_now()
    elif occurred_at.tzinfo is not UTC:
        if occurred_at.tzinfo is None:
            raise SchemaError(
                f"occurred_at={occurred_at.isoformat()} is naive; "
                "pass an aware datetime, e.g. tz=UTC"
            )
        occurred_at = occurred_at.astimezone(UTC)
    event_id = event_id or random_event_id()
    return _envelope(
        (
            event_id,
            type_name,
            occurred_at,
            key,
            causation_id,
            correlation_id or event_id,
            traceparent,
            source,
        )
    )


def _envelope(values: tuple[object, ...]) -> Envelope:
    """An envelope from its checked field values, in field order.

    The slots are filled directly, without keyword parsing: every event gets an
    envelope (Envelope has no __post_init__).
    """
    envelope: Envelope = object.__new__(Envelope)
    _fill_envelope(envelope, values)
    return envelope


def derived_envelope(
    cause: Envelope,
    index: int,
    type_name: str,
    key: str,
    *,
    source: str,
    occurred_at: datetime | None = None,
) -> Envelope:
    """The envelope of the ``index``-th event decided from the event with envelope ``cause``.

    The id is :func:`derive_event_id` of the cause, the cause becomes the
    causation, and correlation and trace context carry over; ``occurred_at``
    defaults to the cause's, which keeps decisions a pure function of their input.
    """
    at = cause.occurred_at if occurred_at is None else occurred_at
    event_id = derive_event_id(cause.event_id, index)
    if type_name not in EVENT_TYPES or at.tzinfo is not UTC:  # new_envelope checks, converts
        return new_envelope(
            type_name,
            key,
            source=source,
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            event_id=event_id,
            traceparent=cause.traceparent,
            occurred_at=at,
        )
    # what new_envelope builds from these arguments, without its keyword parsing and checks:
    # the orchestrator derives three or four envelopes per workflow step
    return _envelope(
        (
            event_id,
            type_name,
            at,
            key,
            cause.event_id,
            cause.correlation_id or event_id,
            cause.traceparent,
            source,
        )
    )
