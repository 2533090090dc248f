"""Rebuild a workflow's :class:`~.history.History` from the topics (``agentlog history --export``).

A workflow lives on one partition *p* of the co-partitioned ``requests``,
``responses`` and ``journal``. Its journal events come in *decision groups*:
the events of one input share their ``causation_id`` (the input's event id)
and their ``occurred_at`` (the decision time), and are appended together in
decision order. :func:`history_from_logs` turns each group back into its
input:

* an event of ``requests``/``responses`` partition *p* with that event id
  (a request, signal, cancel, agent answer, or a lock decision copied there);
* else a timer: the one pending in the state folded so far whose
  ``timer_event_id`` is the cause (timers are derived from state, never stored);
* plus, for a request, the claim on its idempotency key made by an earlier
  ``WorkflowStarted`` of journal partition *p*.

Inputs that decided nothing (duplicates, late answers, progress) are left
out: the topics do not say when the orchestrator read them relative to the
others, and placing one at the wrong point would report a false divergence.
Histories recorded in-process (:class:`~.history.HistoryRecorder`) keep them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from agentlog.agents.orchestrator.inputs import INPUT_TYPES
from agentlog.schemas.events import JOURNAL_EVENT_TYPES, Event, WorkflowStarted
from agentlog.settings import Settings
from agentlog.workflow import (
    Input,
    JournalError,
    JournalEvent,
    WorkflowState,
    fold,
    pending_timers,
)

from .history import History, HistoryEntry, HistoryError, claims_for, describe_event

logger = logging.getLogger(__name__)

_JOURNAL_TYPES = frozenset(cls.__name__ for cls in JOURNAL_EVENT_TYPES)
#: What an export keeps: the inputs, less progress reports (they never decide anything).
_INPUT_TYPES = INPUT_TYPES - {"TaskProgress"}


@dataclass(slots=True)
class _Group:
    """The journal events of one input, with the partition's key claims before them."""

    cause: str
    keys: dict[str, str]
    events: list[JournalEvent] = field(default_factory=list)


def history_from_logs(
    workflow_id: str,
    journal: Iterable[Event],
    inputs: Iterable[Event],
    *,
    source: str = "",
) -> History | None:
    """The history of ``workflow_id`` from its partition's logs; None if it has no decision.

    Args:
        workflow_id: the workflow.
        journal: every event of its journal partition, in log order (other
            workflows' events give the idempotency-key claims).
        inputs: the events of its ``requests`` and ``responses`` partitions.
        source: recorded as the history's ``source``.

    Raises:
        HistoryError: a decision group whose input is in neither topic (deleted
            by retention?) and is no pending timer, or a journal this code
            cannot fold.
    """
    groups = _groups(workflow_id, journal)
    if not groups:
        return None
    by_id: dict[str, Event] = {}
    for event in inputs:
        if (
            event.envelope.type in _INPUT_TYPES
            and getattr(event, "workflow_id", None) == workflow_id
        ):
            by_id.setdefault(event.envelope.event_id, event)
    entries: list[HistoryEntry] = []
    state: WorkflowState | None = None
    for number, group in enumerate(groups):
        item = _input_of(workflow_id, number, group, by_id, state)
        entries.append(
            HistoryEntry(
                input=item,
                decided_at=group.events[0].envelope.occurred_at,
                decisions=tuple(group.events),
                idempotency_keys=claims_for(item, group.keys),
            )
        )
        try:
            state = fold(group.events, state)
        except JournalError as e:
            raise HistoryError(f"workflow {workflow_id}: cannot fold its journal: {e}") from None
    return History(workflow_id=workflow_id, entries=tuple(entries), source=source)


def _groups(workflow_id: str, journal: Iterable[Event]) -> list[_Group]:
    keys: dict[str, str] = {}
    groups: list[_Group] = []
    seen: set[str] = set()
    for event in journal:
        owner = getattr(event, "workflow_id", None)
        if isinstance(event, WorkflowStarted) and event.idempotency_key and owner != workflow_id:
            keys[event.idempotency_key] = event.workflow_id
        if owner != workflow_id or event.envelope.type not in _JOURNAL_TYPES:
            continue
        if event.envelope.event_id in seen:
            continue  # a duplicate append (producer retry): the fold ignores it too
        seen.add(event.envelope.event_id)
        cause = event.envelope.causation_id or ""
        if not groups or groups[-1].cause != cause:
            groups.append(_Group(cause, dict(keys)))
        groups[-1].events.append(cast("JournalEvent", event))
        if isinstance(event, WorkflowStarted) and event.idempotency_key:
            keys[event.idempotency_key] = workflow_id
    return groups


def _input_of(
    workflow_id: str,
    number: int,
    group: _Group,
    by_id: dict[str, Event],
    state: WorkflowState | None,
) -> Input:
    found = by_id.get(group.cause)
    if found is not None:
        return cast("Input", found)
    for timer in pending_timers(state):
        if timer.event_id == group.cause:
            return timer
    first = group.events[0]
    raise HistoryError(
        f"workflow {workflow_id}: decision {number} ({describe_event(first)}, "
        f"{first.envelope.occurred_at.isoformat()}) was caused by event {group.cause!r}, "
        "which is neither on the requests or responses partition of the workflow nor a "
        "pending timer; was it deleted by topic retention? Export histories while the "
        "topics still hold their inputs"
    )


async def export_history(settings: Settings, workflow_id: str) -> History | None:
    """Read the workflow's partition of journal, requests and responses; rebuild its history.

    None when the journal has no decision of ``workflow_id``.

    Raises:
        HistoryError: see :func:`history_from_logs`.
    """
    from agentlog.client import AgentlogClient
    from agentlog.streams.partitions import read_partitions
    from agentlog.streams.topics import JOURNAL, REQUESTS, RESPONSES

    async with AgentlogClient(settings, source="cli") as client:
        partition = await client.partition_of(workflow_id)

    async def read(name: str) -> list[Event]:
        topic = settings.topic(name)
        return [
            event
            async for _, _, event in read_partitions(
                settings, topic, [partition], client_id=f"{settings.source}-history-export"
            )
        ]

    # the journal first: every input it names was on the input topics before it
    journal = await read(JOURNAL.name)
    inputs = [*await read(REQUESTS.name), *await read(RESPONSES.name)]
    logger.info(
        "workflow %s: %s journal and %s input events read from partition %s",
        workflow_id,
        len(journal),
        len(inputs),
        partition,
    )
    source = f"agentlog history --export: {settings.topic(JOURNAL.name)} partition {partition}"
    return history_from_logs(workflow_id, journal, inputs, source=source)
