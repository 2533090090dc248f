"""An event with U+0000 in a text field neither stops the projector nor is lost.

Any Kafka client may produce events. A ``CancelRequested`` for a workflow id
containing U+0000, or an agent's ``TaskProgress`` whose message contains it,
decodes fine, so it is not dead-lettered; but PostgreSQL ``text`` cannot hold
that character. The batch's write fails with ``CharacterNotInRepertoireError``
and the projector writes it again with U+FFFD in its place (it used to stop,
and stop again after every restart). The API's writes refuse such ids (422),
as its reads do: nothing is produced.
"""

from __future__ import annotations

import uuid

import pytest

from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.schemas.events import CancelRequested, Event, new_envelope
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import REQUESTS, RESPONSES
from tests.integration.orchestrator.test_guarantees_cli_input import changed, log_ends
from tests.integration.projections.test_projections_api import api_client, projected
from tests.support.samples import sample_event


def cancel(workflow_id: str) -> CancelRequested:
    return CancelRequested(
        envelope=new_envelope("CancelRequested", workflow_id, source="test"),
        workflow_id=workflow_id,
        reason="test",
    )


def nul_in_the_key() -> tuple[str, Event, Event]:
    """What ``POST /workflows/wf-%00-…/cancel`` produced before the API refused it."""
    good = cancel(f"wf-{uuid.uuid4().hex[:8]}")
    return REQUESTS.name, cancel(f"wf-\x00-{uuid.uuid4().hex[:8]}"), good


def nul_in_an_agent_message() -> tuple[str, Event, Event]:
    """An agent reporting progress with a message copied from binary output."""
    good = sample_event("TaskProgress", message="read 3 bytes")
    return RESPONSES.name, sample_event("TaskProgress", message="read 3 bytes: a\x00b"), good


@pytest.mark.parametrize("make", [nul_in_the_key, nul_in_an_agent_message])
@pytest.mark.timeout(90)
async def test_an_event_postgresql_cannot_store_does_not_stop_the_projector(
    settings: Settings, schema: str, make: object
) -> None:
    assert callable(make)
    family, unstorable, good = make()
    topic = settings.topic(family)
    async with EventProducer(settings) as producer:
        first = await producer.send(topic, unstorable)
        # on the same partition, behind the unstorable one
        value, key = producer.codec.encode(good), good.envelope.key.encode()
        await (await producer.send_raw(topic, value, key=key, partition=first.partition))
    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(30)
        await projector.wait_caught_up(30)  # its dead letters, if any
        async with projector.pool.acquire() as conn:
            archived = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM events")}
            dead = [
                (r["original_topic"], r["original_partition"], r["original_offset"])
                for r in await conn.fetch("SELECT * FROM dead_letters")
            ]
    assert good.envelope.event_id in archived
    # kept (with the character replaced) or dead-lettered with its coordinates
    assert unstorable.envelope.event_id in archived or dead == [
        (topic, first.partition, first.offset)
    ]


@pytest.mark.timeout(90)
async def test_the_api_refuses_to_write_an_id_postgresql_cannot_store(
    settings: Settings, schema: str
) -> None:
    await projected(settings, schema, workflows=1)
    before = await log_ends(settings)
    async with api_client(settings, schema) as api:
        read = await api.get("/workflows/wf-%00-x")
        assert read.status_code == 422, read.text  # holds today
        writes = [
            await api.post("/workflows/wf-%00-x/cancel", json={"reason": "x"}),
            await api.post("/workflows/wf-%00-x/signals", json={"signal": "approve"}),
            await api.post(
                "/workflows", json={"definition": "pr-deploy", "workflow_id": "wf-\x00-y"}
            ),
            await api.post(
                "/workflows", json={"definition": "pr-deploy", "idempotency_key": "k-\x00"}
            ),
        ]
    assert [w.status_code for w in writes] == [422] * len(writes), [w.text for w in writes]
    assert changed(before, await log_ends(settings)) == {}
