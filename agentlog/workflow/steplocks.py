"""Locks declared on steps: what the journal records and what the runner sends.

A step with ``locks`` runs each attempt like this (see ``docs/locks.md``):

1. ``StepScheduled`` (the attempt starts, its deadline runs), then one
   ``LockAwaited`` per declared lock, resources rendered from the step's
   context and **sorted**, so that every workflow takes the locks of a resource
   set in the same order (no deadlock between two steps that each hold one).
2. The runner sends a ``LockRequested`` for the first lock not acquired yet
   (:func:`requests_after`); the lock manager answers with ``LockGranted`` or
   ``LockDenied``, copied to the workflow's partition of ``responses``.
3. A grant becomes ``LockAcquired`` in the journal (token and lease recorded);
   the next lock is requested; once all are held the runner publishes the
   ``TaskRequested`` with ``fencing_tokens`` ({resource: token}).
4. A denial, or no decision within the lock's wait plus
   :data:`LOCK_DECISION_GRACE_MS`, fails the attempt (``lock_denied`` /
   ``lock_timeout``, retryable per the step's policy).
5. When the attempt ends (completed, failed, timed out, workflow ended) the
   runner sends a release for every lock it requested
   (:func:`releases_between`): the lock manager frees a held lease, or
   withdraws a waiting request.

Everything here is pure. Commands sent to the lock manager have ids derived
from their ``LockAwaited`` (index 0 the request, 1 the release), so a runner
that re-sends them after a crash sends the very same events, and the lock
manager ignores request ids it knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from agentlog.schemas.events import (
    LockAcquired,
    LockAwaited,
    LockReleaseRequested,
    LockRequested,
    derived_envelope,
)
from agentlog.workflow.batch import PENDING, SOURCE, Batch, JournalEvent
from agentlog.workflow.context import item_context, step_context
from agentlog.workflow.expr import ExpressionError, evaluate
from agentlog.workflow.ids import lock_request_id
from agentlog.workflow.spec import LockDecl
from agentlog.workflow.state import StepLock, TaskState, TaskStatus, WorkflowState
from agentlog.workflow.template import render_text

#: How long past a lock's ``wait_ms`` the orchestrator waits for the lock
#: manager's decision before it fails the attempt with ``lock_timeout`` (the
#: decision may have been lost in a lock-manager crash, or no manager runs).
LOCK_DECISION_GRACE_MS = 30_000


def lock_resources(view: WorkflowState, name: str, item: int) -> list[tuple[str, LockDecl]]:
    """The resources an attempt of step ``name`` (item ``item``) locks, in acquisition order.

    Templates are rendered in the step's context (with ``item``/``index`` for a
    ``for_each`` step); two declarations that render to the same resource are
    taken once (the first declaration's ``ttl_ms``/``wait_ms``).

    Raises:
        ExpressionError: a template fails or renders to an empty resource.
    """
    assert view.plan is not None
    spec = view.plan.steps[name]
    if not spec.locks:
        return []
    context = step_context(view, name)
    if spec.for_each is not None:
        items = evaluate(spec.for_each, context)
        if not isinstance(items, list) or item >= len(items):
            raise ExpressionError(f"for_each {spec.for_each!r} has no item {item} any more")
        context = item_context(context, items[item], item)
    found: dict[str, LockDecl] = {}
    for decl in spec.locks:
        resource = render_text(decl.resource, context).strip()
        if not resource:
            raise ExpressionError(f"lock resource {decl.resource!r} rendered to an empty string")
        found.setdefault(resource, decl)
    return sorted(found.items())


def await_locks(
    batch: Batch, workflow_id: str, name: str, task_id: str, locks: list[tuple[str, LockDecl]]
) -> None:
    """Emit a ``LockAwaited`` per lock of the attempt ``task_id`` (after its ``StepScheduled``)."""
    for index, (resource, decl) in enumerate(locks):
        batch.emit(
            LockAwaited(
                envelope=PENDING,
                workflow_id=workflow_id,
                step=name,
                resource=resource,
                request_id=lock_request_id(task_id, index),
                task_id=task_id,
                ttl_ms=decl.ttl_ms,
                wait_timeout_ms=decl.wait_ms,
            )
        )


def _locked_tasks(state: WorkflowState) -> Iterator[tuple[str, TaskState]]:
    """``(step, task)`` of every item of the steps that declare locks (none: nothing to scan)."""
    if state.plan is None:
        return
    for name in state.plan.locked:
        for task in state.steps[name].tasks:
            yield name, task


def _running_attempt(state: WorkflowState, event: LockAwaited | LockAcquired) -> TaskState | None:
    """The attempt ``event`` is about, if it is still running."""
    step = state.steps.get(event.step)
    task = step.task(event.task_id) if step is not None else None
    return task if task is not None and task.status is TaskStatus.RUNNING else None


def waiting_for(state: WorkflowState, request_id: str) -> tuple[str, TaskState, StepLock] | None:
    """The running attempt whose awaited lock is ``request_id``: (step, task, lock), or None."""
    for name, task in _locked_tasks(state):
        lock = task.awaiting_lock if task.status is TaskStatus.RUNNING else None
        if lock is not None and lock.request_id == request_id:
            return name, task, lock
    return None


def lock_deadline(lock: StepLock) -> datetime:
    """When an attempt stops waiting for the lock manager's decision on ``lock``."""
    wait = lock.awaited.wait_timeout_ms + LOCK_DECISION_GRACE_MS
    return lock.requested_at + timedelta(milliseconds=wait)


# -- what the runner sends to the lock manager --------------------------------------------


def request_for(lock: StepLock) -> LockRequested:
    """The ``LockRequested`` for ``lock`` (event id derived from its ``LockAwaited``, index 0)."""
    awaited = lock.awaited
    return LockRequested(
        envelope=derived_envelope(
            awaited.envelope, 0, "LockRequested", awaited.resource, source=SOURCE
        ),
        resource=awaited.resource,
        request_id=awaited.request_id,
        requester=f"{awaited.workflow_id}/{awaited.step}",
        ttl_ms=awaited.ttl_ms,
        wait_timeout_ms=awaited.wait_timeout_ms,
        workflow_id=awaited.workflow_id,
    )


def release_for(lock: StepLock) -> LockReleaseRequested:
    """The release command for ``lock`` (derived from its ``LockAwaited``, index 1).

    Token 0 when the grant was not recorded: it matches any grant of the request,
    and withdraws it if it is still queued.
    """
    awaited = lock.awaited
    return LockReleaseRequested(
        envelope=derived_envelope(
            awaited.envelope, 1, "LockReleaseRequested", awaited.resource, source=SOURCE
        ),
        resource=awaited.resource,
        request_id=awaited.request_id,
        fencing_token=lock.token or 0,
        reason="the step ended",
    )


def requests_after(
    state: WorkflowState | None, events: Iterable[JournalEvent]
) -> list[LockRequested]:
    """The requests to send once ``events`` are journaled (``state``: the state after them)."""
    if state is None or not state.running:
        return []
    found: dict[str, LockRequested] = {}
    for event in events:
        if not isinstance(event, LockAwaited | LockAcquired):
            continue
        task = _running_attempt(state, event)
        lock = task.awaiting_lock if task is not None else None
        if lock is not None:
            found.setdefault(lock.request_id, request_for(lock))
    return list(found.values())


def live_locks(state: WorkflowState | None) -> dict[str, StepLock]:
    """Request id -> lock of every requested lock of a running attempt of a running workflow."""
    if state is None or not state.running or state.plan is None or not state.plan.locked:
        return {}
    return {
        lock.request_id: lock
        for _, task in _locked_tasks(state)
        if task.status is TaskStatus.RUNNING
        for lock in task.requested_locks
    }


def releases_between(
    before: WorkflowState | None, after: WorkflowState | None
) -> list[LockReleaseRequested]:
    """Releases for the locks that were live in ``before`` and are not in ``after``."""
    live = live_locks(before)
    if not live:
        return []
    still = live_locks(after)
    return [release_for(lock) for rid, lock in live.items() if rid not in still]


def dispatchable_after(
    state: WorkflowState | None, events: Iterable[JournalEvent]
) -> list[TaskState]:
    """Attempts whose last lock ``events`` acquired: their tasks can be published now."""
    if state is None or not state.running:
        return []
    found: list[TaskState] = []
    for event in events:
        if not isinstance(event, LockAcquired):
            continue
        task = _running_attempt(state, event)
        if task is not None and task.awaiting_lock is None:
            found.append(task)
    return found


def lock_requests_to_publish(state: WorkflowState | None) -> list[LockRequested]:
    """On recovery: the request of every awaited lock (the lock manager ignores known ids)."""
    if state is None or not state.running:
        return []
    return [
        request_for(lock)
        for _, task in _locked_tasks(state)
        if task.status is TaskStatus.RUNNING and (lock := task.awaiting_lock) is not None
    ]


def releases_to_publish(
    state: WorkflowState | None, *, ended_since: datetime
) -> list[LockReleaseRequested]:
    """On recovery: releases of locks of attempts that ended (a crash may have lost them).

    Covers every finished attempt still in the state of a running workflow, and
    every attempt of a workflow that ended at or after ``ended_since``. A release
    the lock manager already applied changes nothing.
    """
    if state is None:
        return []
    if not state.running and (state.ended_at is None or state.ended_at < ended_since):
        return []
    return [
        release_for(lock)
        for _, task in _locked_tasks(state)
        if not state.running or task.status is not TaskStatus.RUNNING
        for lock in task.requested_locks
    ]
