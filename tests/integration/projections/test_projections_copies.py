"""Lock decisions copied to ``responses`` are folded once, from the locks topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.projections.tables import LOCK_REQUESTS, LOCKS
from agentlog.schemas.events import LockGranted, LockRequested, new_envelope
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import LOCKS as LOCKS_TOPIC
from agentlog.streams.topics import RESPONSES
from tests.integration.projections.support import load_table


@pytest.mark.timeout(90)
async def test_a_copied_grant_is_folded_once_from_the_locks_topic(
    settings: Settings, schema: str
) -> None:
    resource, workflow_id = f"repo:{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    request_id = f"{workflow_id}/deploy/1/0/1/lock/0"
    now = datetime.now(UTC)
    request = LockRequested(
        envelope=new_envelope("LockRequested", resource, source="orchestrator", occurred_at=now),
        resource=resource,
        request_id=request_id,
        requester=f"{workflow_id}/deploy",
        ttl_ms=30_000,
        wait_timeout_ms=5_000,
        workflow_id=workflow_id,
    )
    grant = LockGranted(
        envelope=new_envelope("LockGranted", resource, source="lock-manager", occurred_at=now),
        resource=resource,
        request_id=request_id,
        requester=f"{workflow_id}/deploy",
        fencing_token=1,
        lease_expires_at=now + timedelta(seconds=30),
        workflow_id=workflow_id,
    )
    async with EventProducer(settings) as producer:
        # the copy is in the log first: it must not be what the projection folds
        await producer.send(settings.topic(RESPONSES.name), grant, key=workflow_id)
        await producer.send(settings.topic(LOCKS_TOPIC.name), request)
        await producer.send(settings.topic(LOCKS_TOPIC.name), grant)
    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(60)
        async with projector.pool.acquire() as conn:
            locks = {r.resource: r for r in await load_table(conn, LOCKS)}
            requests = {r.request_id: r for r in await load_table(conn, LOCK_REQUESTS)}
            archived = await conn.fetch(
                f"SELECT topic FROM {schema}.events WHERE event_id = $1",
                grant.envelope.event_id,
            )
    assert (locks[resource].status, locks[resource].grants) == ("held", 1)
    assert locks[resource].holder_request_id == request_id
    assert requests[request_id].status == "granted"
    assert requests[request_id].workflow_id == workflow_id
    assert [r["topic"] for r in archived] == [settings.topic(LOCKS_TOPIC.name)]
