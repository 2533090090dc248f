"""The ``workflows`` row of a workflow: the workflow-level part of ``evolve``, row by row.

:func:`evolve_workflow` mirrors :func:`agentlog.workflow.evolve` for every
field the row has (status, definition, version, input, priority, output,
error, failed step, times, journal length), so a row always equals the state
the journal folds to; a unit test holds the two together on every demo and
failure path. Steps are not in this row: see :mod:`.steps`, or fold the
archived journal (the API's ``GET /workflows/{id}``).

Rows are mutable: :func:`apply_workflow` updates the batch's working copy in
place (a ``dataclasses.replace`` per event cost more than everything else the
projector does); :func:`evolve_workflow` is the pure form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeGuard

from agentlog.projections.records import json_text, to_json
from agentlog.schemas.events import (
    JOURNAL_EVENT_TYPES,
    Event,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowRejected,
    WorkflowStarted,
    WorkflowSucceeded,
)
from agentlog.workflow.batch import JournalEvent

RUNNING = "running"

JOURNAL_TYPES = JOURNAL_EVENT_TYPES


def is_journal(event: Event) -> TypeGuard[JournalEvent]:
    """Whether ``event`` is a journal event (the catalogue's ``journal`` family)."""
    return isinstance(event, JOURNAL_TYPES)


JOURNAL_TYPE_NAMES = frozenset(t.__name__ for t in JOURNAL_TYPES)


@dataclass(slots=True, kw_only=True)
class WorkflowRow:
    """One row of ``workflows`` (columns in table order). JSON columns hold JSON text."""

    workflow_id: str
    status: str
    definition: str
    version: int
    priority: int
    input: str | None
    spec: str | None
    labels: str
    idempotency_key: str | None
    request_event_id: str
    correlation_id: str
    output: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    failed_step: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    journal_length: int = 1
    last_event_id: str
    last_event_at: datetime
    kafka_partition: int
    last_offset: int


#: Columns a later journal event may change (the store updates only these).
MUTABLE_COLUMNS: tuple[str, ...] = (
    "status",
    "output",
    "error_kind",
    "error_message",
    "failed_step",
    "ended_at",
    "journal_length",
    "last_event_id",
    "last_event_at",
    "kafka_partition",
    "last_offset",
)


def evolve_workflow(
    row: WorkflowRow | None, event: Event, partition: int, offset: int
) -> WorkflowRow | None:
    """The row after ``event`` (read at ``partition``/``offset`` of the journal); pure.

    ``event`` is assumed new: the projector drops events whose id it has folded
    before. Non-journal events and other workflows' events leave the row as is.
    """
    if row is None:
        return _first(event, partition, offset) if is_journal(event) else None
    if not is_journal(event) or event.workflow_id != row.workflow_id:
        return row
    new = replace(row)
    apply_workflow(new, event, partition, offset)
    return new


def apply_workflow(row: WorkflowRow, event: JournalEvent, partition: int, offset: int) -> None:
    """Fold a journal event of ``row``'s workflow into ``row``, in place."""
    envelope = event.envelope
    row.journal_length += 1
    row.last_event_id = envelope.event_id
    row.last_event_at = envelope.occurred_at
    row.kafka_partition = partition
    row.last_offset = offset
    if row.status != RUNNING:
        return
    match event:
        case WorkflowSucceeded():
            row.status = "succeeded"
            row.ended_at = envelope.occurred_at
            row.output = json_text(event.output)
        case WorkflowFailed():
            row.status = "failed"
            row.ended_at = envelope.occurred_at
            row.error_kind = event.error_kind
            row.error_message = event.message
            row.failed_step = event.step
        case WorkflowCancelled():
            row.status = "cancelled"
            row.ended_at = envelope.occurred_at
            row.error_kind = "cancelled"
            row.error_message = event.reason
        case _:
            pass


def _first(event: Event, partition: int, offset: int) -> WorkflowRow | None:
    """The row a workflow's first journal event creates (None unless started or rejected)."""
    envelope = event.envelope
    common = {
        "created_at": envelope.occurred_at,
        "last_event_id": envelope.event_id,
        "last_event_at": envelope.occurred_at,
        "kafka_partition": partition,
        "last_offset": offset,
        "correlation_id": envelope.correlation_id,
    }
    if isinstance(event, WorkflowStarted):
        return WorkflowRow(
            workflow_id=event.workflow_id,
            status=RUNNING,
            definition=event.definition,
            version=event.version,
            priority=event.priority,
            input=json_text(event.input),
            spec=json_text(event.spec),
            labels=to_json(dict(event.labels)),
            idempotency_key=event.idempotency_key,
            request_event_id=event.request_event_id,
            started_at=envelope.occurred_at,
            **common,  # type: ignore[arg-type]
        )
    if isinstance(event, WorkflowRejected):
        return WorkflowRow(
            workflow_id=event.workflow_id,
            status="rejected",
            definition="",
            version=0,
            priority=0,
            input=None,
            spec=None,
            labels="{}",
            idempotency_key=None,
            request_event_id=event.request_event_id,
            ended_at=envelope.occurred_at,
            error_kind="rejected",
            error_message=event.reason,
            **common,  # type: ignore[arg-type]
        )
    return None
