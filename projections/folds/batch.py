"""Fold one batch of new records into row changes: pure, given the rows it touches.

The store loads the current rows of every key the batch touches
(:func:`keys_of`), :func:`fold_batch` applies the records in log order, and
the store writes the resulting rows. Keeping the fold pure lets the unit
tests compare it with :func:`agentlog.workflow.fold` and lets the same code
serve the live projector and a rebuild.

Inside, each touched row is copied once and then updated in place by the
per-model ``apply_*`` functions: copying a row per event cost more than the
rest of the projector together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from agentlog.projections.folds.agents import (
    AGENT_EVENT_TYPES,
    AgentRow,
    apply_agent,
    new_agent,
)
from agentlog.projections.folds.archive import DeadLetterRow, add_cache_stats, dead_letter_row
from agentlog.projections.folds.locks import (
    LOCK_EVENT_TYPES,
    LockRequestRow,
    LockRow,
    apply_lock,
    is_command,
    new_lock,
    new_request,
)
from agentlog.projections.folds.metrics import AgentMinute, LockMinute, Rollups
from agentlog.projections.folds.steps import (
    STEP_EVENT_TYPES,
    StepRow,
    apply_step,
    derive,
    new_step,
)
from agentlog.projections.folds.workflows import (
    JOURNAL_TYPES,
    WorkflowRow,
    apply_workflow,
    evolve_workflow,
)
from agentlog.projections.records import Record
from agentlog.schemas.events import CacheStats, DeadLetter

R = TypeVar("R")

_JOURNAL, _STEP, _JOURNAL_STEP, _LOCK, _AGENT, _CACHE, _DEAD = range(7)
#: Event class -> what it feeds (one dict lookup per event instead of isinstance chains).
_KIND: dict[type, int] = {
    **dict.fromkeys(JOURNAL_TYPES, _JOURNAL),
    **dict.fromkeys(STEP_EVENT_TYPES, _STEP),
    **{t: _JOURNAL_STEP for t in JOURNAL_TYPES if t in STEP_EVENT_TYPES},
    **dict.fromkeys(LOCK_EVENT_TYPES, _LOCK),
    **dict.fromkeys(AGENT_EVENT_TYPES, _AGENT),
    CacheStats: _CACHE,
    DeadLetter: _DEAD,
}


@dataclass(slots=True)
class Keys:
    """The keys of every row a batch may change, per table."""

    workflows: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)
    locks: set[str] = field(default_factory=set)
    lock_requests: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Rows:
    """Current rows by key, per table (what the store loaded)."""

    workflows: dict[str, WorkflowRow] = field(default_factory=dict)
    steps: dict[str, StepRow] = field(default_factory=dict)
    locks: dict[str, LockRow] = field(default_factory=dict)
    lock_requests: dict[str, LockRequestRow] = field(default_factory=dict)
    agents: dict[str, AgentRow] = field(default_factory=dict)


@dataclass(slots=True)
class Changes:
    """What a batch changes.

    Attributes:
        new_workflows: rows to insert.
        updated_workflows: existing rows whose mutable columns changed.
        steps, locks, lock_requests, agents: rows to upsert whole.
        dead_letters: rows to insert.
        agent_minutes, lock_minutes: deltas to add.
        event_counts: (topic, type) -> events to add.
    """

    new_workflows: list[WorkflowRow] = field(default_factory=list)
    updated_workflows: list[WorkflowRow] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    locks: list[LockRow] = field(default_factory=list)
    lock_requests: list[LockRequestRow] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    agent_minutes: list[AgentMinute] = field(default_factory=list)
    lock_minutes: list[LockMinute] = field(default_factory=list)
    event_counts: dict[tuple[str, str], int] = field(default_factory=dict)


def keys_of(records: Sequence[Record]) -> Keys:
    """The rows the batch may touch, to load before folding."""
    keys = Keys()
    kinds = _KIND
    for record in records:
        event: Any = record.event
        kind = kinds.get(type(event))
        if kind is None:
            continue
        if kind in (_JOURNAL, _JOURNAL_STEP):
            keys.workflows.add(event.workflow_id)
        if kind in (_STEP, _JOURNAL_STEP):
            keys.steps.add(event.task_id)
        elif kind == _LOCK and not is_command(event):
            keys.locks.add(event.resource)
            keys.lock_requests.add(event.request_id)
        elif kind == _AGENT:
            keys.agents.add(event.agent_id)
    return keys


class _Working:
    """Copies of the loaded rows, made on first touch, and which keys changed.

    With ``in_place`` the loaded rows themselves are updated (no copies): the
    store loads rows for one fold only, or drops its cache when a batch fails.
    """

    def __init__(self, loaded: Rows, *, in_place: bool = False) -> None:
        self.loaded = loaded
        self.copy: Any = _same if in_place else replace
        self.workflows: dict[str, WorkflowRow | None] = {}
        self.steps: dict[str, StepRow] = {}
        self.locks: dict[str, LockRow] = {}
        self.lock_requests: dict[str, LockRequestRow] = {}
        self.agents: dict[str, AgentRow] = {}

    def get(self, working: dict[str, R], loaded: dict[str, R], key: str) -> R | None:
        row = working.get(key)
        if row is None and key in loaded:
            row = working[key] = self.copy(loaded[key])
        return row


def _same(row: R) -> R:
    return row


def fold_batch(records: Sequence[Record], loaded: Rows, *, in_place: bool = False) -> Changes:
    """Apply ``records`` (new events only, in log order per partition) to ``loaded`` rows.

    ``loaded`` is not modified unless ``in_place``: then its rows are updated
    instead of copies (cheaper; for a caller that owns them). Every row the
    batch changed appears once in the result, in its final state. Events of
    types no fold knows (a newer agentlog's) are only counted.
    """
    fold = BatchFold(loaded, in_place=in_place)
    fold.apply(records)
    return fold.changes()


class BatchFold:
    """:func:`fold_batch` in steps: :meth:`apply` records in pieces, then :meth:`changes`.

    Applying a batch in consecutive pieces gives what one :func:`fold_batch`
    gives; the store folds in pieces so that it can feed PostgreSQL the archive
    ``COPY`` in between.
    """

    def __init__(self, loaded: Rows, *, in_place: bool = False) -> None:
        self.loaded = loaded
        self._w = _Working(loaded, in_place=in_place)
        self._rollups = Rollups()
        self._counts: dict[tuple[str, str], int] = {}
        self._dead_letters: list[DeadLetterRow] = []

    def apply(self, records: Sequence[Record]) -> None:
        """Fold the next records (log order per partition)."""
        w = self._w
        loaded = self.loaded
        rollups = self._rollups
        counts = self._counts
        get = w.get
        kinds = _KIND
        for record in records:
            event: Any = record.event
            count_key = (record.topic, event.envelope.type)
            counts[count_key] = counts.get(count_key, 0) + 1
            kind = kinds.get(type(event))
            if kind is None:
                continue
            if kind in (_JOURNAL, _JOURNAL_STEP):
                _workflow(w, record, event)
            if kind in (_STEP, _JOURNAL_STEP):
                step = get(w.steps, loaded.steps, event.task_id)
                if step is None:
                    step = w.steps[event.task_id] = new_step(event)
                apply_step(step, event, rollups)
            elif kind == _LOCK and not is_command(event):
                _lock(w, event, rollups)
            elif kind == _AGENT:
                agent = get(w.agents, loaded.agents, event.agent_id)
                if agent is None:
                    agent = w.agents[event.agent_id] = new_agent(event)
                apply_agent(agent, event)
            elif kind == _CACHE:
                add_cache_stats(event, rollups)
            elif kind == _DEAD:
                row = dead_letter_row(record)
                if row is not None:
                    self._dead_letters.append(row)

    def changes(self) -> Changes:
        """Every row the records applied so far changed, in its final state."""
        return _changes(self._w, self.loaded, self._rollups, self._counts, self._dead_letters)


def _lock(w: _Working, event: Any, rollups: Rollups) -> None:
    lock = w.get(w.locks, w.loaded.locks, event.resource)
    if lock is None:
        lock = w.locks[event.resource] = new_lock(event)
    request = w.get(w.lock_requests, w.loaded.lock_requests, event.request_id)
    if request is None:
        request = w.lock_requests[event.request_id] = new_request(event)
    apply_lock(lock, request, event, rollups)


def _workflow(w: _Working, record: Record, event: Any) -> None:
    workflow_id = event.workflow_id
    if workflow_id not in w.workflows:
        loaded = w.loaded.workflows.get(workflow_id)
        if loaded is None:
            # the first event creates the row (or nothing, for a stray event)
            w.workflows[workflow_id] = evolve_workflow(None, event, record.partition, record.offset)
            return
        w.workflows[workflow_id] = w.copy(loaded)
    row = w.workflows[workflow_id]
    if row is None:
        w.workflows[workflow_id] = evolve_workflow(None, event, record.partition, record.offset)
    else:
        apply_workflow(row, event, record.partition, record.offset)


def _changes(
    w: _Working,
    loaded: Rows,
    rollups: Rollups,
    counts: dict[tuple[str, str], int],
    dead_letters: list[DeadLetterRow],
) -> Changes:
    changes = Changes(dead_letters=dead_letters, event_counts=counts)
    for workflow_id in sorted(w.workflows):
        row = w.workflows[workflow_id]
        if row is None:
            continue
        target = (
            changes.updated_workflows if workflow_id in loaded.workflows else changes.new_workflows
        )
        target.append(row)
    for step in w.steps.values():
        derive(step)
    changes.steps = [w.steps[k] for k in sorted(w.steps)]
    changes.locks = [w.locks[k] for k in sorted(w.locks)]
    changes.lock_requests = [w.lock_requests[k] for k in sorted(w.lock_requests)]
    changes.agents = [w.agents[k] for k in sorted(w.agents)]
    changes.agent_minutes = rollups.sorted_agents()
    changes.lock_minutes = rollups.sorted_locks()
    return changes
