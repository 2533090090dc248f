"""The agent registry: who registered, when each was last seen, what it runs.

``alive`` is not stored: it depends on the time of the query (last seen within
a few heartbeat intervals, and not deregistered), so the API computes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from agentlog.schemas.events import AgentDeregistered, AgentHeartbeat, AgentRegistered

AgentEvent = AgentRegistered | AgentHeartbeat | AgentDeregistered
AGENT_EVENT_TYPES = (AgentRegistered, AgentHeartbeat, AgentDeregistered)


@dataclass(slots=True, kw_only=True)
class AgentRow:
    """One row of ``agents``."""

    agent_id: str
    agent_kind: str
    host: str | None = None
    pid: int | None = None
    concurrency: int | None = None
    version: str | None = None
    registered_at: datetime | None = None
    last_seen_at: datetime
    in_flight: int | None = None
    capacity: int | None = None
    heartbeats: int = 0
    deregistered_at: datetime | None = None
    deregister_reason: str | None = None


def agent_after(row: AgentRow | None, event: AgentEvent) -> AgentRow:
    """The agent's row after ``event``; pure."""
    new = replace(row) if row is not None else new_agent(event)
    apply_agent(new, event)
    return new


def new_agent(event: AgentEvent) -> AgentRow:
    """The row of an agent no event has touched yet."""
    return AgentRow(
        agent_id=event.agent_id,
        agent_kind=event.agent_kind,
        last_seen_at=event.envelope.occurred_at,
    )


def apply_agent(row: AgentRow, event: AgentEvent) -> None:
    """Fold an agent's (new) event into its row in place (events of one agent come in order)."""
    at = event.envelope.occurred_at
    row.last_seen_at = max(row.last_seen_at, at)
    row.agent_kind = event.agent_kind
    match event:
        case AgentRegistered():
            row.host = event.host
            row.pid = event.pid
            row.concurrency = event.concurrency
            row.version = event.version
            row.registered_at = at
            if row.capacity is None:
                row.capacity = event.concurrency
            row.deregistered_at = None
            row.deregister_reason = None
        case AgentHeartbeat():
            row.in_flight = event.in_flight
            row.capacity = event.capacity
            row.heartbeats += 1
        case AgentDeregistered():
            row.in_flight = 0
            row.deregistered_at = at
            row.deregister_reason = event.reason
