"""The query API against a real projection: reads equal the folds, writes produce events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka.structs import TopicPartition

from agentlog.client import state_to_json
from agentlog.projections.api import create_app
from agentlog.projections.config import ProjectionSettings
from agentlog.projections.records import Record
from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.schemas.events import CancelRequested, SignalSent, WorkflowRequested
from agentlog.settings import Settings
from agentlog.workflow import fold
from tests.integration.projections.support import produce, read_topics, scenario


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, schema: str, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, ProjectionSettings(schema=schema, api_token=token))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client
    finally:
        await app.state.api.writer.close()
        await app.state.api.db.close()


async def projected(settings: Settings, schema: str, workflows: int = 30) -> list[Record]:
    """Produce a scenario (with poison), project it, return the topics' records."""
    await produce(settings, scenario(settings.topic_prefix, workflows), poison_every=89)
    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(60)
        await projector.wait_caught_up(30)
    return await read_topics(settings)


def journals(records: list[Record]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for r in records:
        if r.topic.endswith(".journal"):
            found.setdefault(r.event.workflow_id, []).append(r.event)  # type: ignore[union-attr]
    return found


def expected_state(events: list[Any]) -> dict[str, Any]:
    state = fold(events)
    assert state is not None
    return json.loads(json.dumps(state_to_json(state)))


def without_extras(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("journal_length", "last_event_id", "as_of")}


@pytest.mark.timeout(120)
async def test_reads_equal_the_folds_of_the_topics(settings: Settings, schema: str) -> None:
    records = await projected(settings, schema)
    by_workflow = journals(records)
    async with api_client(settings, schema) as api:
        # the list, page by page, newest first
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = (await api.get("/workflows", params=params)).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert {w["workflow_id"] for w in seen} == set(by_workflow)
        keys = [(w["created_at"], w["workflow_id"]) for w in seen]
        assert keys == sorted(keys, reverse=True)
        succeeded = (await api.get("/workflows", params={"status": "succeeded"})).json()
        assert {w["workflow_id"] for w in succeeded["items"]} == {
            w
            for w, events in by_workflow.items()
            if fold(events).status.value == "succeeded"  # type: ignore[union-attr]
        }
        demo = (await api.get("/workflows", params={"definition": "pr-deploy"})).json()["items"]
        assert demo
        assert all(w["definition"] == "pr-deploy" for w in demo)

        for workflow_id, events in by_workflow.items():
            body = (await api.get(f"/workflows/{workflow_id}")).json()
            assert without_extras(body) == expected_state(events), workflow_id
            assert body["journal_length"] == len(events)

        # as_of: by event id (a prefix of the journal) and by time
        for workflow_id, events in list(by_workflow.items())[:6]:
            for n, event in enumerate(events, start=1):
                response = await api.get(
                    f"/workflows/{workflow_id}", params={"as_of": event.envelope.event_id}
                )
                assert response.status_code == 200, response.text
                assert without_extras(response.json()) == expected_state(events[:n])
            moment = events[len(events) // 2].envelope.occurred_at
            response = await api.get(
                f"/workflows/{workflow_id}", params={"as_of": moment.isoformat()}
            )
            in_time = [e for e in events if e.envelope.occurred_at <= moment]
            assert without_extras(response.json()) == expected_state(in_time)
            early = (events[0].envelope.occurred_at - timedelta(days=1)).isoformat()
            assert (
                await api.get(f"/workflows/{workflow_id}", params={"as_of": early})
            ).status_code == 404

        # history and timeline
        workflow_id = next(iter(by_workflow))
        archived = {r.event_id for r in records if r.event.envelope.key == workflow_id}
        history: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
            page = (await api.get(f"/workflows/{workflow_id}/history", params=params)).json()
            history += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert {e["event_id"] for e in history} == archived
        journal_only = (
            await api.get(
                f"/workflows/{workflow_id}/history",
                params={"type": ["WorkflowStarted", "WorkflowSucceeded"]},
            )
        ).json()["items"]
        assert {e["type"] for e in journal_only} <= {"WorkflowStarted", "WorkflowSucceeded"}
        timeline = (await api.get(f"/workflows/{workflow_id}/timeline")).json()
        assert timeline["steps"]
        assert all(s["task_id"].startswith(f"{workflow_id}/") for s in timeline["steps"])

        # locks, agents, dead letters, stats, metrics
        locks = (await api.get("/locks")).json()["items"]
        assert len(locks) == 3
        detail = (await api.get(f"/locks/{locks[0]['resource']}")).json()
        assert detail["history"]
        # holders' commands are in the resource's history, though never folded into its row
        history_types = {e["type"] for e in detail["history"]}
        assert {"LockRenewRequested", "LockReleaseRequested", "LockReleased"} <= history_types
        assert detail["recent_requests"]
        agents = (await api.get("/agents")).json()["items"]
        assert len(agents) == 3
        # the scenario's heartbeats lie in 2031: recent enough, unless deregistered
        assert [a["alive"] for a in agents] == [a["deregistered_at"] is None for a in agents]
        assert sum(a["alive"] for a in agents) == 2
        dead = (await api.get("/dead-letters")).json()["items"]
        assert dead
        one = (await api.get(f"/dead-letters/{dead[0]['event_id']}")).json()
        assert one["error_reason"] == "unknown_fingerprint"
        assert bytes.fromhex(one["raw"]) == b"\xc3\x01not-avro"
        stats = (await api.get("/stats", params={"minutes": 525_600})).json()
        assert sum(stats["workflows"].values()) == len(by_workflow)
        assert stats["projector"]
        metrics = (await api.get("/metrics")).text
        assert 'agentlog_workflows{status="succeeded"}' in metrics
        assert "agentlog_step_latency_seconds_bucket{" in metrics
        assert "agentlog_projector_lag{" in metrics
        assert "agentlog_lock_wait_seconds_count" in metrics


async def test_bad_input_gets_a_4xx_naming_the_field(settings: Settings, schema: str) -> None:
    await projected(settings, schema, workflows=3)
    async with api_client(settings, schema) as api:
        for path, params, field in (
            ("/workflows", {"limit": 0}, "limit"),
            ("/workflows", {"status": "sleeping"}, "status"),
            ("/workflows", {"cursor": "not-a-cursor"}, "cursor"),
            ("/workflows", {"created_after": "yesterday"}, "created_after"),
            ("/stats", {"minutes": -1}, "minutes"),
        ):
            response = await api.get(path, params=params)
            assert response.status_code == 422, (path, params)
            assert response.json()["detail"][0]["loc"][-1] == field
        response = await api.post("/workflows", json={"definition": "x", "priority": 9})
        assert response.status_code == 422
        assert "priority" in response.text
        assert (await api.get("/workflows/nope")).status_code == 404
        assert (await api.get("/workflows/nope/timeline")).status_code == 404
        response = await api.get("/workflows/x%00y")
        assert response.status_code == 422
        assert "PostgreSQL cannot store" in response.text


async def test_writes_only_produce_events(settings: Settings, schema: str) -> None:
    records = await projected(settings, schema, workflows=3)
    async with api_client(settings, schema) as api:
        started = await api.post(
            "/workflows", json={"definition": "pr-deploy", "input": {"repo": "a/b", "pr": 1}}
        )
        assert started.status_code == 202, started.text
        workflow_id = started.json()["workflow_id"]
        assert (
            await api.post(f"/workflows/{workflow_id}/cancel", json={"reason": "test"})
        ).status_code == 202
        assert (
            await api.post(
                f"/workflows/{workflow_id}/signals",
                json={"signal": "approve", "payload": {"ok": 1}},
            )
        ).status_code == 202
        dead = (await api.get("/dead-letters")).json()["items"][0]
        redriven = await api.post(f"/dead-letters/{dead['event_id']}/redrive")
        assert redriven.status_code == 202, redriven.text
        assert redriven.json()["topic"] == dead["original_topic"]
    after = await read_topics(settings)
    requests = [
        r.event
        for r in after
        if r.topic.endswith(".requests") and r.event.envelope.key == workflow_id
    ]
    assert [type(e) for e in requests] == [WorkflowRequested, CancelRequested, SignalSent]
    raw = await raw_record(
        settings, redriven.json()["topic"], redriven.json()["partition"], redriven.json()["offset"]
    )
    assert raw == bytes.fromhex(dead["raw"])
    assert len(after) == len(records) + 3


async def raw_record(settings: Settings, topic: str, partition: int, offset: int) -> bytes:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        async with asyncio.timeout(10):
            while True:
                batch = await consumer.getmany(tp, timeout_ms=200)
                for record in batch.get(tp, []):
                    if record.offset == offset:
                        return bytes(record.value)
    finally:
        await consumer.stop()


async def test_a_live_tail_streams_until_the_workflow_ends(settings: Settings, schema: str) -> None:
    items = scenario(settings.topic_prefix, 1)
    workflow_id = next(i.event.workflow_id for i in items if i.family == "journal")  # type: ignore[attr-defined]
    mine = [i for i in items if getattr(i.event, "workflow_id", None) == workflow_id]
    first_half = len(mine) // 2
    await produce(settings, mine[:first_half])
    async with Projector(settings, ProjectorConfig(schema=schema)) as projector:
        await projector.wait_caught_up(30)
        async with api_client(settings, schema) as api:
            received: list[str] = []

            async def listen() -> None:
                async with api.stream("GET", f"/workflows/{workflow_id}/events") as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            received.append(line.removeprefix("event: "))
                            if line == "event: end":
                                return

            listening = asyncio.create_task(listen())
            await asyncio.sleep(0.5)
            assert not listening.done()
            await produce(settings, mine[first_half:])
            async with asyncio.timeout(30):
                await listening
    assert received[-1] == "end"
    assert "WorkflowSucceeded" in received
    assert len(received) - 1 == len({i.event.envelope.event_id for i in mine})


async def test_a_token_guards_every_route(settings: Settings, schema: str) -> None:
    await projected(settings, schema, workflows=1)
    async with api_client(settings, schema, token="s3cret") as api:
        for path in ("/workflows", "/openapi.json", "/metrics", "/docs"):
            response = await api.get(path)
            assert response.status_code == 401, path
            assert "AGENTLOG_API_TOKEN" in response.json()["detail"]
        assert (
            await api.get("/workflows", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        ok = await api.get("/workflows", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        spec = (await api.get("/openapi.json", headers={"Authorization": "Bearer s3cret"})).json()
        assert spec["security"] == [{"bearer": []}]
