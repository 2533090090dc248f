"""Recorded workflow histories: every input of one workflow, in order, with its decisions.

A history is what ``agentlog verify`` replays. The journal alone is not
enough to replay a workflow: it records the orchestrator's decisions, not the
inputs that led to them (a ``TaskFailed``'s ``retryable`` flag, a request's
priority and labels, the agent's answer beyond its output), nor the inputs
that decided nothing (a late answer, a duplicate, progress). So a history
keeps, per input: the input itself (an event, or the timer that fired), the
decision time the runner passed to ``handle`` (``now``), the partition's
idempotency-key claim on a request's key, and the journal events recorded for
it. :class:`HistoryRecorder` and :func:`record_history` record one by running
the core in-process; :mod:`.history_export` rebuilds one from the topics;
:mod:`.history_file` stores it as an Avro object container file.

Pure: no I/O, no clock; nothing here imports fastavro or aiokafka.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from agentlog.errors import AgentlogError
from agentlog.schemas.events import Envelope, JsonValue, WorkflowRequested, WorkflowStarted
from agentlog.workflow import (
    Input,
    JournalEvent,
    TimerFired,
    WorkflowRegistry,
    WorkflowState,
    handle,
)


class HistoryError(AgentlogError):
    """A history that cannot be read, recorded or replayed; the message says why and the fix."""


def _no_keys() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One input of a workflow and the decisions recorded for it.

    Attributes:
        input: the input event, or the timer that fired.
        decided_at: the decision time (``now``) the runner passed to ``handle``:
            the ``occurred_at`` of every decision it made.
        decisions: the journal events recorded for it, in order (empty when
            it decided nothing).
        idempotency_keys: for a request, the partition's claim on its
            idempotency key (key -> workflow id that started with it), if any:
            all that ``handle`` reads of the partition-level map.
    """

    input: Input
    decided_at: datetime
    decisions: tuple[JournalEvent, ...] = ()
    idempotency_keys: Mapping[str, str] = field(default_factory=_no_keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """Every input of one workflow in decision order, with the decisions recorded for each.

    Attributes:
        workflow_id: the workflow.
        entries: its inputs, in the order the orchestrator decided them.
        source: how it was recorded (free text, e.g. the exporting command).
        note: free text, e.g. why a fixture exists.
    """

    workflow_id: str
    entries: tuple[HistoryEntry, ...]
    source: str = ""
    note: str = ""

    @property
    def started(self) -> WorkflowStarted | None:
        """The recorded ``WorkflowStarted`` (None if the request was rejected)."""
        for entry in self.entries:
            for event in entry.decisions:
                if isinstance(event, WorkflowStarted):
                    return event
        return None

    @property
    def request(self) -> WorkflowRequested | None:
        """The first ``WorkflowRequested`` input, if any."""
        return next((e.input for e in self.entries if isinstance(e.input, WorkflowRequested)), None)

    @property
    def definition(self) -> str | None:
        """The definition name the workflow ran (or its request named)."""
        started = self.started
        if started is not None:
            return started.definition
        request = self.request
        return request.definition if request is not None else None

    @property
    def version(self) -> int | None:
        """The definition version the workflow ran (or its request named)."""
        started = self.started
        if started is not None:
            return started.version
        request = self.request
        return request.version if request is not None else None

    @property
    def journal(self) -> list[JournalEvent]:
        """Every recorded decision, in order: the workflow's journal."""
        return [event for entry in self.entries for event in entry.decisions]


class HistoryRecorder:
    """Records a history by running the pure core in-process, the way the runner does.

    Each :meth:`feed` calls ``handle`` with the state so far, the decision time
    and the partition's idempotency keys, keeps the input and its decisions,
    and folds them (the runner's :meth:`PartitionState.apply`).

    Args:
        registry: the definitions requests may name.
        workflow_id: the workflow; every input must belong to it.
        idempotency_keys: the partition's claims before this workflow
            (idempotency key -> workflow id), e.g. to record a duplicate request.
    """

    def __init__(
        self,
        registry: WorkflowRegistry,
        workflow_id: str,
        *,
        idempotency_keys: Mapping[str, str] | None = None,
    ) -> None:
        if not workflow_id:
            raise HistoryError("workflow_id is empty; a history records one workflow")
        self.registry = registry
        self.workflow_id = workflow_id
        self.keys: dict[str, str] = dict(idempotency_keys or {})
        self.state: WorkflowState | None = None
        self.entries: list[HistoryEntry] = []

    def feed(self, item: Input, now: datetime) -> tuple[JournalEvent, ...]:
        """Decide on ``item`` at ``now``, record it, and return its decisions.

        Raises:
            HistoryError: ``item`` belongs to another workflow, or ``now`` is naive.
        """
        if item.workflow_id != self.workflow_id:
            raise HistoryError(
                f"{describe_input(item)} belongs to workflow {item.workflow_id!r}, not "
                f"{self.workflow_id!r}; record one history per workflow"
            )
        if now.tzinfo is None:
            raise HistoryError(f"now={now.isoformat()} is naive; pass an aware datetime (UTC)")
        now = now.astimezone(UTC)
        decision = handle(
            self.state, item, registry=self.registry, now=now, idempotency_keys=self.keys
        )
        self.entries.append(
            HistoryEntry(
                input=item,
                decided_at=now,
                decisions=decision.events,
                idempotency_keys=claims_for(item, self.keys),
            )
        )
        if decision.events:
            self.state = decision.state
            for event in decision.events:
                if isinstance(event, WorkflowStarted) and event.idempotency_key:
                    self.keys[event.idempotency_key] = event.workflow_id
        return decision.events

    def history(self, *, source: str = "", note: str = "") -> History:
        """The history recorded so far."""
        return History(
            workflow_id=self.workflow_id, entries=tuple(self.entries), source=source, note=note
        )


def record_history(
    inputs: Iterable[Input | tuple[Input, datetime]],
    *,
    registry: WorkflowRegistry,
    idempotency_keys: Mapping[str, str] | None = None,
    source: str = "recorded in-process by agentlog.agents.orchestrator.history",
    note: str = "",
) -> History:
    """Run the core over ``inputs`` of one workflow and record what it decides.

    Args:
        inputs: the inputs in order, each alone (decided at its own time: an
            event's ``occurred_at``, a timer's ``due_at``) or with its decision time.
        registry: the definitions requests may name.
        idempotency_keys: the partition's claims before this workflow.
        source: recorded as the history's ``source``.
        note: recorded as the history's ``note``.

    Raises:
        HistoryError: no inputs, or inputs of more than one workflow.
    """
    items = [item if isinstance(item, tuple) else (item, input_time(item)) for item in inputs]
    if not items:
        raise HistoryError("no inputs to record; pass at least the WorkflowRequested")
    recorder = HistoryRecorder(
        registry, items[0][0].workflow_id or "", idempotency_keys=idempotency_keys
    )
    for item, now in items:
        recorder.feed(item, now)
    return recorder.history(source=source, note=note)


def input_time(item: Input) -> datetime:
    """When an input happened: a timer's ``due_at``, an event's ``occurred_at``."""
    if isinstance(item, TimerFired):
        return item.due_at
    return item.envelope.occurred_at


def claims_for(item: Input, keys: Mapping[str, str]) -> Mapping[str, str]:
    """The part of a partition's idempotency-key map ``handle`` reads for ``item``."""
    if isinstance(item, WorkflowRequested) and item.idempotency_key in keys:
        key = item.idempotency_key
        assert key is not None
        return {key: keys[key]}
    return {}


def describe_input(item: Input) -> str:
    """``"TaskCompleted 3f2a… (step review, attempt 1)"`` or ``"timer retry:… due …"``."""
    if isinstance(item, TimerFired):
        return f"timer {item.timer_id} due {item.due_at.isoformat()}"
    details = [
        f"{name} {value}"
        for name in ("step", "attempt", "signal", "resource")
        if (value := getattr(item, name, None)) is not None
    ]
    where = f" ({', '.join(details)})" if details else ""
    return f"{item.envelope.type} {item.envelope.event_id}{where}"


def describe_event(event: JournalEvent) -> str:
    """``"StepScheduled review"``: the type and the step, if any."""
    step = getattr(event, "step", None)
    return f"{type(event).__name__} {step}" if step else type(event).__name__


# -- JSON views ----------------------------------------------------------------------


def to_json(value: Any) -> JsonValue:
    """A JSON view of an event, an input, or any value inside one.

    Dataclasses become objects (events get ``type`` first), datetimes ISO 8601,
    tuples lists, enums their value, bytes hex.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body: dict[str, JsonValue] = {}
        if isinstance(value, TimerFired):
            body["type"] = "TimerFired"
        elif isinstance(getattr(value, "envelope", None), Envelope):
            body["type"] = value.envelope.type  # type: ignore[attr-defined]
        for f in dataclasses.fields(value):
            body[f.name] = to_json(getattr(value, f.name))
        return body
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value  # type: ignore[no-any-return]


def entry_to_json(index: int, entry: HistoryEntry) -> dict[str, JsonValue]:
    """A JSON view of one entry (``agentlog history --json``)."""
    return {
        "index": index,
        "decided_at": entry.decided_at.isoformat(),
        "input": to_json(entry.input),
        "idempotency_keys": dict(entry.idempotency_keys),
        "decisions": [to_json(e) for e in entry.decisions],
    }


def history_to_json(history: History) -> dict[str, JsonValue]:
    """A JSON view of a whole history."""
    return {
        "workflow_id": history.workflow_id,
        "definition": history.definition,
        "version": history.version,
        "source": history.source,
        "note": history.note,
        "inputs": len(history.entries),
        "decisions": len(history.journal),
        "entries": [entry_to_json(i, e) for i, e in enumerate(history.entries)],
    }
