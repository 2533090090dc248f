"""Deterministic identifiers the orchestrator writes into the journal.

These formats are part of the journal contract, like ``EVENT_ID_NAMESPACE``:
:func:`~agentlog.workflow.evolve.evolve` recognises loop restarts, skips and
joins by comparing ids with these functions, so recorded histories depend on
them. Never change a format; add a new one beside it.
"""

from __future__ import annotations

import uuid

from agentlog.schemas.events import EVENT_ID_NAMESPACE


def task_id(workflow_id: str, step: str, run: int, item: int, attempt: int) -> str:
    """Id of one attempt of one item of one run of a step.

    Args:
        workflow_id: the workflow.
        step: the step name.
        run: how many times loops have started the step, from 1.
        item: the ``for_each`` item index, 0 for a step without ``for_each``.
        attempt: the attempt number, from 1.
    """
    return f"{workflow_id}/{step}/{run}/{item}/{attempt}"


def idempotency_key(workflow_id: str, step: str, run: int, item: int) -> str:
    """The key agents pass to side effects: equal for every attempt of one item of one run."""
    return f"{workflow_id}/{step}/{run}/{item}"


def skip_id(workflow_id: str, step: str, run: int) -> str:
    """``task_id`` of the step-level ``StepCompleted`` (attempt 0) that records a skip."""
    return f"{workflow_id}/{step}/{run}/skip"


def join_id(workflow_id: str, step: str, run: int) -> str:
    """``task_id`` of the step-level ``StepCompleted`` (attempt 0) that joins a fan-out."""
    return f"{workflow_id}/{step}/{run}/join"


def timer_event_id(workflow_id: str, timer_id: str) -> str:
    """Event id of a timer firing: the causation id of the decisions it causes."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"timer/{workflow_id}/{timer_id}"))


def lock_request_id(task_id: str, index: int) -> str:
    """Id of the request for the ``index``-th lock (in acquisition order) of an attempt."""
    return f"{task_id}/lock/{index}"
