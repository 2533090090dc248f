"""Copying decisions about workflow steps' lock requests to ``agentlog.responses``.

A step that declares locks asks through a ``LockRequested`` that carries its
``workflow_id``; the lock manager's ``LockGranted`` / ``LockDenied`` about it
carry it too. The orchestrator does not read the locks topic (other keys, other
partitions, another consumer group), so the lock manager copies those decisions
to the workflow's partition of ``responses`` (key: the workflow id), where the
orchestrator reads them as inputs like agents' answers.

Order per batch: the decisions are appended to the locks topic and acknowledged
first (the locks topic is the truth), then copied, then the inputs are
committed. A crash between the append and the copy loses the copy: on recovery
the manager copies the grant of every current holder with a workflow again
(:func:`held_grants`), and the orchestrator ignores grants it already has. A
lost denial is covered on the orchestrator's side: a step whose lock request
stays undecided past its wait plus a grace period fails that attempt
(``lock_timeout``) and releases what it asked for.

The copy is the same event (same envelope and event id), so consumers that
read every topic (projections) can tell it is a copy: a lock decision outside
the locks topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from aiokafka.structs import RecordMetadata

from agentlog.schemas.events import Event, LockDenied, LockGranted
from agentlog.streams.producer import EventProducer

from .commands import LockDecision
from .state import MANAGER_SOURCE, LockState

WorkflowDecision = LockGranted | LockDenied


def for_workflows(groups: Iterable[Sequence[LockDecision]]) -> list[WorkflowDecision]:
    """The decisions of a batch that answer a workflow step's request, in order."""
    return [
        event
        for group in groups
        for event in group
        if isinstance(event, (LockGranted, LockDenied)) and event.workflow_id
    ]


def held_grants(
    states: Mapping[str, LockState], last_grant: Mapping[str, LockGranted]
) -> list[LockGranted]:
    """The grants of current holders that belong to a workflow: copied again on recovery.

    Args:
        states: resource -> state after folding the partition.
        last_grant: resource -> the last ``LockGranted`` decision folded for it.
    """
    found: list[LockGranted] = []
    for resource, state in states.items():
        grant = last_grant.get(resource)
        holder = state.holder
        if (
            grant is not None
            and grant.workflow_id
            and holder is not None
            and holder.request_id == grant.request_id
            and holder.token == grant.fencing_token
        ):
            found.append(grant)
    return found


def track_grant(last_grant: dict[str, LockGranted], event: Event) -> None:
    """Remember ``event`` if it is a lock-manager grant (for :func:`held_grants`)."""
    if isinstance(event, LockGranted) and event.envelope.source == MANAGER_SOURCE:
        last_grant[event.resource] = event


async def copy_to_responses(
    producer: EventProducer, topic: str, decisions: Sequence[WorkflowDecision]
) -> None:
    """Produce each decision to ``topic`` keyed by its workflow id; return once all are acked."""
    futures: list[asyncio.Future[RecordMetadata]] = []
    for event in decisions:
        assert event.workflow_id
        futures.append(await producer.enqueue(topic, event, key=event.workflow_id))
    if futures:
        await asyncio.gather(*futures)
