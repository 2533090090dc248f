"""Agent ids and the registration events on the ``agents`` topic (keyed by agent id)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from agentlog.schemas.events import (
    AgentDeregistered,
    AgentHeartbeat,
    AgentRegistered,
    new_envelope,
)

if TYPE_CHECKING:
    from agentlog.streams.producer import EventProducer

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_agent_id(kind: str, *, host: str | None = None, pid: int | None = None) -> str:
    """``<kind>-<host>-<pid>-<8 hex>``: unique per process and pool, readable in logs."""
    host_part = _UNSAFE.sub("-", host or socket.gethostname()).strip("-")[:40] or "host"
    return f"{kind}-{host_part}-{os.getpid() if pid is None else pid}-{uuid.uuid4().hex[:8]}"


def registered(
    agent_id: str, kind: str, *, concurrency: int, version: str, source: str
) -> AgentRegistered:
    """The ``AgentRegistered`` a pool publishes when it starts."""
    return AgentRegistered(
        envelope=new_envelope("AgentRegistered", agent_id, source=source),
        agent_id=agent_id,
        agent_kind=kind,
        host=socket.gethostname(),
        pid=os.getpid(),
        concurrency=concurrency,
        version=version,
    )


def heartbeat(
    agent_id: str, kind: str, *, in_flight: int, capacity: int, source: str
) -> AgentHeartbeat:
    """An ``AgentHeartbeat``: alive, running ``in_flight`` of ``capacity`` tasks."""
    return AgentHeartbeat(
        envelope=new_envelope("AgentHeartbeat", agent_id, source=source),
        agent_id=agent_id,
        agent_kind=kind,
        in_flight=in_flight,
        capacity=capacity,
    )


def deregistered(agent_id: str, kind: str, *, reason: str, source: str) -> AgentDeregistered:
    """The ``AgentDeregistered`` a pool publishes when it stops."""
    return AgentDeregistered(
        envelope=new_envelope("AgentDeregistered", agent_id, source=source),
        agent_id=agent_id,
        agent_kind=kind,
        reason=reason,
    )


async def send_heartbeats(
    producer: EventProducer,
    topic: str,
    beat: Callable[[], AgentHeartbeat],
    interval: float,
    stopping: asyncio.Event,
) -> None:
    """Publish ``beat()`` on ``topic`` every ``interval`` seconds until ``stopping`` is set."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
            return
        await producer.send(topic, beat())
