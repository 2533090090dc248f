"""One realistic sample of every event type, for codec, contract and integration tests.

``sample_event(name)`` returns a new event each call: a fresh ``event_id`` and a
fresh workflow id (or resource / agent id), so events from different calls never
collide on a shared broker. Every optional field is filled unless
``minimal=True``, which leaves optional fields at their defaults.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agentlog.schemas import events as ev
from agentlog.schemas.events import EVENT_TOPIC, EVENT_TYPES, Event, JsonValue, new_envelope

SOURCE = "tests"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

#: A JSON value that exercises every JSON type, unicode and nesting.
RICH_JSON: JsonValue = {
    "prompt": "Summarise the attached report in three bullet points, ça va? 日本語 ✓",
    "documents": [{"id": "doc-1", "pages": 12}, {"id": "doc-2", "pages": None}],
    "temperature": 0.25,
    "max_tokens": 2**40,
    "stream": False,
    "tags": [],
}

#: The field whose value is the partition key, by topic family (docs/events.md).
_KEY_FIELD = {"locks": "resource", "cache": "agent_id", "agents": "agent_id"}


def _ids() -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:12]
    return {
        "workflow_id": f"wf-{suffix}",
        "task_id": f"task-{suffix}",
        "resource": f"db:customers/{suffix}",
        "request_id": f"lockreq-{suffix}",
        "agent_id": f"agent-{suffix}",
    }


def _fields(name: str, ids: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Every field of event ``name`` except the envelope, optional ones filled."""
    wf, task, step = ids["workflow_id"], ids["task_id"], "summarise"
    attempt = {"workflow_id": wf, "step": step, "task_id": task, "attempt": 2}
    task_attempt = {"task_id": task, "workflow_id": wf, "step": step, "attempt": 2}
    lock = {"resource": ids["resource"], "request_id": ids["request_id"]}
    requester = f"{wf}/{step}"
    lease = now + timedelta(seconds=30)
    agent = {"agent_id": ids["agent_id"], "agent_kind": "llm"}
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "WorkflowRequested": lambda: {"workflow_id": wf, "definition": "report-summary",
                                      "version": 3, "spec": {"steps": [{"name": step}]},
                                      "input": RICH_JSON, "priority": 4,
                                      "idempotency_key": f"req-{wf}",
                                      "labels": {"team": "risk", "env": "test"}},
        "CancelRequested": lambda: {"workflow_id": wf, "reason": "operator asked"},
        "SignalSent": lambda: {"workflow_id": wf, "signal": "approve",
                               "payload": {"approved": True, "by": "alice"}},
        "WorkflowStarted": lambda: {"workflow_id": wf, "definition": "report-summary",
                                    "version": 3, "spec": {"steps": [{"name": step}]},
                                    "input": RICH_JSON, "priority": 4,
                                    "request_event_id": str(uuid.uuid4()),
                                    "idempotency_key": f"req-{wf}", "labels": {"team": "risk"}},
        "WorkflowRejected": lambda: {"workflow_id": wf, "reason": "unknown definition",
                                     "request_event_id": str(uuid.uuid4()),
                                     "request": {"definition": "nope"}},
        "StepScheduled": lambda: {**attempt, "agent_kind": "llm", "input": RICH_JSON,
                                  "deadline": lease, "priority": 5,
                                  "fencing_tokens": {ids["resource"]: 7}},
        "StepCompleted": lambda: {**attempt, "output": ["point one", "point two"]},
        "StepFailed": lambda: {**attempt, "error_kind": "agent_error",
                               "message": "model overloaded", "retryable": True},
        "StepRetryScheduled": lambda: {**attempt, "next_attempt": 3, "retry_at": lease,
                                       "backoff_ms": 4000},
        "StepTimedOut": lambda: {**attempt, "deadline": now},
        "LockAwaited": lambda: {"workflow_id": wf, "step": step, **lock, "task_id": task,
                                "ttl_ms": 45_000, "wait_timeout_ms": 9_000},
        "LockAcquired": lambda: {"workflow_id": wf, "step": step, "task_id": task, **lock,
                                 "fencing_token": 7, "lease_expires_at": lease},
        "SignalReceived": lambda: {"workflow_id": wf, "signal": "approve", "payload": None},
        "WorkflowSucceeded": lambda: {"workflow_id": wf, "output": {"summary": "ok"}},
        "WorkflowFailed": lambda: {"workflow_id": wf, "step": step, "error_kind": "timeout",
                                   "message": "step summarise timed out 3 times"},
        "WorkflowCancelled": lambda: {"workflow_id": wf, "reason": "operator asked"},
        "TaskRequested": lambda: {**task_attempt, "agent_kind": "llm", "input": RICH_JSON,
                                  "deadline": lease, "idempotency_key": f"{wf}/{step}/2",
                                  "priority": 5, "fencing_tokens": {ids["resource"]: 7}},
        "TaskCancelled": lambda: {**task_attempt, "agent_kind": "llm",
                                  "reason": f"workflow {wf} is cancelled"},
        "TaskCompleted": lambda: {**task_attempt, "output": "a plain string is JSON too",
                                  "usage": ev.TaskUsage(input_tokens=1200, output_tokens=310,
                                                        cost_usd=0.0123, latency_ms=812.5),
                                  "agent_id": ids["agent_id"]},
        "TaskFailed": lambda: {**task_attempt, "error_kind": "invalid_output",
                               "message": "not JSON", "retryable": False,
                               "agent_id": ids["agent_id"]},
        "TaskProgress": lambda: {**task_attempt, "fraction": 0.5, "message": "halfway",
                                 "agent_id": ids["agent_id"]},
        "LockRequested": lambda: {**lock, "requester": requester, "ttl_ms": 30_000,
                                  "wait_timeout_ms": 5_000, "workflow_id": wf},
        "LockReleaseRequested": lambda: {**lock, "fencing_token": 7, "reason": "deployed"},
        "LockRenewRequested": lambda: {**lock, "fencing_token": 7, "ttl_ms": 30_000},
        "LockGranted": lambda: {**lock, "requester": requester, "fencing_token": 7,
                                "lease_expires_at": lease, "workflow_id": wf},
        "LockQueued": lambda: {**lock, "requester": requester, "position": 2},
        "LockDenied": lambda: {**lock, "requester": requester, "reason": "wait timeout",
                               "workflow_id": wf},
        "LockRenewed": lambda: {**lock, "fencing_token": 7, "lease_expires_at": lease},
        "LockReleased": lambda: {**lock, "fencing_token": 7},
        "LockExpired": lambda: {**lock, "fencing_token": 7},
        "CacheStats": lambda: {**agent, "window_start": now - timedelta(seconds=10),
                               "window_end": now, "hits": 90, "misses": 10,
                               "hit_latency_ms": 0.4, "miss_latency_ms": 950.0,
                               "bytes": 1 << 20, "evictions": 3, "tokens_saved": 48_000,
                               "backend": "redis"},
        "AgentRegistered": lambda: {**agent, "host": "worker-3", "pid": 4242,
                                    "concurrency": 8, "version": "0.1.0"},
        "AgentHeartbeat": lambda: {**agent, "in_flight": 3, "capacity": 8},
        "AgentDeregistered": lambda: {**agent, "reason": "shutdown"},
        "AgentKindCircuitChanged": lambda: {"agent_kind": "llm", "state": "open",
                                            "consecutive_failures": 5, "retry_at": lease,
                                            "reason": "5 failures in a row",
                                            "orchestrator": "orchestrator-1"},
        "DeadLetter": lambda: {"original_topic": "agentlog.requests", "original_partition": 3,
                               "original_offset": 1_234_567, "original_key": wf.encode(),
                               "original_timestamp": now, "error_reason": "corrupt_body",
                               "error": "corrupt_body: bad union index",
                               "raw": b"\xc3\x01\x00\xff garbage",
                               "headers": (ev.DeadLetterHeader(key="traceparent",
                                                               value=TRACEPARENT.encode()),
                                           ev.DeadLetterHeader(key="empty", value=None)),
                               "consumer_group": "agentlog-orchestrator"},
    }  # fmt: skip
    return builders[name]()


def _minimal(cls: type[Event], fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields that have defaults, so the dataclass defaults apply."""
    defaults = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    return {k: v for k, v in fields.items() if k not in defaults}


def sample_event(name: str, *, minimal: bool = False, **overrides: Any) -> Event:
    """A new sample of event ``name`` with fresh ids.

    Args:
        name: an event name, e.g. ``"TaskRequested"``.
        minimal: leave every field that has a default at its default.
        **overrides: field values to use instead (``envelope`` included).
    """
    cls = EVENT_TYPES[name]
    ids = _ids()
    now = datetime.now(UTC)
    fields = _fields(name, ids, now)
    if minimal:
        fields = _minimal(cls, fields)
    key_field = _KEY_FIELD.get(EVENT_TOPIC[name], "workflow_id")
    # A dead letter's key is the original record's key.
    key = str({**ids, **fields, **overrides}[key_field])
    envelope = new_envelope(
        name,
        key,
        source=SOURCE,
        causation_id=None if minimal else str(uuid.uuid4()),
        traceparent=None if minimal else TRACEPARENT,
        occurred_at=now,
    )
    return cls(**{"envelope": envelope, **fields, **overrides})


def all_sample_events(*, minimal: bool = False) -> list[Event]:
    """One new sample of every event type, in catalogue order."""
    return [sample_event(name, minimal=minimal) for name in EVENT_TYPES]
