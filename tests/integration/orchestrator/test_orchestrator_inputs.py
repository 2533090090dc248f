"""Requests from any Kafka client, bad requests, misrouted inputs, and a crash before publishing."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator import Orchestrator, partition_for
from agentlog.agents.orchestrator.journal import JournalWriter
from agentlog.client import AgentlogClient
from agentlog.schemas.events import (
    Event,
    TaskRequested,
    WorkflowFailed,
    WorkflowRejected,
    WorkflowRequested,
    new_envelope,
)
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.producer import EventProducer
from agentlog.workflow import WorkflowRegistry, WorkflowSpec, WorkflowStatus, handle, workflow
from agentlog.workflow.demos import TRIAGE_CHAIN, demo_registry
from tests.integration.orchestrator.conftest import DEMO_KINDS
from tests.integration.orchestrator.harness import JournalTail, Responder

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "avro"


def plain_workflow_requested(workflow_id: str, definition: str, input: object) -> bytes:
    """A WorkflowRequested built with fastavro and the .avsc file only (docs/events.md)."""
    raw = json.loads((SCHEMAS / "WorkflowRequested.avsc").read_text())
    schema = fastavro.parse_schema(raw)
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    header = b"\xc3\x01" + bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    event_id = str(uuid.uuid4())
    record = {
        "envelope": {
            "event_id": event_id,
            "type": "WorkflowRequested",
            "occurred_at": time.time_ns() // 1000,
            "key": workflow_id,
            "causation_id": None,
            "correlation_id": event_id,
            "traceparent": None,
            "source": "plain-script",
        },
        "workflow_id": workflow_id,
        "definition": definition,
        "version": None,
        "spec": None,
        "input": json.dumps(input),
        "priority": 3,
        "idempotency_key": None,
        "labels": {},
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return header + body.getvalue()


@pytest.mark.timeout(90)
async def test_a_request_from_plain_aiokafka_and_fastavro_runs_to_completion(
    settings: Settings, tail: JournalTail
) -> None:
    workflow_id = f"plain-{uuid.uuid4().hex[:8]}"
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS),
    ):
        await orchestrator.wait_ready()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            value = plain_workflow_requested(
                workflow_id, "triage-chain", TRIAGE_CHAIN.example_input
            )
            await producer.send_and_wait(
                settings.topic("requests"), value, key=workflow_id.encode()
            )
        finally:
            await producer.stop()
        states = await tail.terminal([workflow_id], seconds=30)
    assert states[workflow_id].status is WorkflowStatus.SUCCEEDED
    assert states[workflow_id].output == {
        "ticket": "T-1042",
        "actions": ["add index", "batch writes"],
    }


@pytest.mark.timeout(90)
async def test_bad_requests_are_rejected_with_a_reason_while_others_keep_going(
    settings: Settings, tail: JournalTail
) -> None:
    invalid_spec = {
        "name": "typo",
        "version": 1,
        "steps": [{"name": "a", "agent": "writer", "afer": []}],
    }
    bad_kind_spec = {
        "name": "bad-kind",
        "version": 1,
        "steps": [{"name": "a", "agent": "no such kind!"}],
    }
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS),
        AgentlogClient(settings) as client,
        EventProducer(settings) as producer,
    ):
        await orchestrator.wait_ready()
        requests = settings.topic("requests")
        await producer.send_raw(requests, b"\xc3\x01 not avro at all", key=b"poison-1")
        await producer.send_raw(requests, b'{"json": "is not the wire format"}', key=b"poison-2")
        ids = {
            "unknown definition": await client.submit("no-such-workflow", {}),
            "invalid spec": await client.submit(None, {}, spec=invalid_spec),
            "invalid kind name": await client.submit(None, {}, spec=bad_kind_spec),
            "missing input": await client.submit("triage-chain", {"nothing": True}),
            "kind without a topic name": await client.submit(good_spec_with("Writer.V2"), {}),
            "good": await client.submit(TRIAGE_CHAIN.name, TRIAGE_CHAIN.example_input),
        }
        nobody = await client.submit(good_spec_with("nobody-home"), {})
        states = await tail.terminal(ids.values(), seconds=30)
        await tail.until(lambda t: nobody in t.states, seconds=10)
        dead = await read_all(settings, "deadletter", 2)
        tasks_for_nobody = await read_all(settings, "tasks.nobody-home", 1)
        await client.cancel(nobody, "the test is over")
        await tail.terminal([nobody], seconds=10)

    reasons = {
        name: next(e.reason for e in tail.of(wf) if isinstance(e, WorkflowRejected))
        for name, wf in ids.items()
        if states[wf].status is WorkflowStatus.REJECTED
    }
    assert "no-such-workflow" in reasons["unknown definition"]
    assert "afer" in reasons["invalid spec"]
    assert "no such kind!" in reasons["invalid kind name"]
    assert "ticket" in reasons["missing input"]
    # the spec accepts "Writer.V2" but no tasks topic can carry it: the runner fails the step
    failed = next(
        e for e in tail.of(ids["kind without a topic name"]) if isinstance(e, WorkflowFailed)
    )
    assert failed.error_kind == "invalid_agent_kind"
    assert "lowercase" in failed.message
    assert states[ids["good"]].status is WorkflowStatus.SUCCEEDED
    # poison never stops the orchestrator: it is dead-lettered with its coordinates
    assert {d.original_topic for d in dead} == {settings.topic("requests")}
    assert {d.error_reason for d in dead} <= {
        "bad_magic",
        "truncated",
        "unknown_fingerprint",
        "corrupt_body",
    }
    # an agent kind nobody declared just gets its topic, and the task waits there
    assert [t.workflow_id for t in tasks_for_nobody] == [nobody]
    assert tail.states[nobody].status is WorkflowStatus.CANCELLED


@pytest.mark.timeout(90)
async def test_an_input_on_the_wrong_partition_is_forwarded_to_its_workflows_partition(
    settings: Settings, tail: JournalTail
) -> None:
    workflow_id = f"misrouted-{uuid.uuid4().hex[:8]}"
    home = partition_for(workflow_id, settings.partitions)
    wrong = (home + 1) % settings.partitions
    request = WorkflowRequested(
        envelope=new_envelope("WorkflowRequested", workflow_id, source="librdkafka-default"),
        workflow_id=workflow_id,
        definition="triage-chain",
        input=TRIAGE_CHAIN.example_input,
    )
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS),
        EventProducer(settings) as producer,
    ):
        await orchestrator.wait_ready()
        value = AvroCodec.default().encode(request)
        await (
            await producer.send_raw(
                settings.topic("requests"), value, key=workflow_id.encode(), partition=wrong
            )
        )
        states = await tail.terminal([workflow_id], seconds=30)
    assert states[workflow_id].status is WorkflowStatus.SUCCEEDED
    assert orchestrator.stats.forwarded == 1
    # decided by the owner of its home partition, and journaled there
    assert tail.partitions[workflow_id] == {home}


@pytest.mark.timeout(90)
async def test_decisions_journaled_but_tasks_never_published_are_republished_on_recovery(
    settings: Settings, tail: JournalTail
) -> None:
    """The crash window between the journal append and the task publish loses nothing."""
    workflow_id = f"crashed-{uuid.uuid4().hex[:8]}"
    request = WorkflowRequested(
        envelope=new_envelope("WorkflowRequested", workflow_id, source="test"),
        workflow_id=workflow_id,
        definition="triage-chain",
        input=TRIAGE_CHAIN.example_input,
    )
    decision = handle(None, request, registry=demo_registry(), now=datetime.now(UTC))
    partition = partition_for(workflow_id, settings.partitions)
    async with EventProducer(settings) as producer:
        # what a crashed orchestrator leaves: the request, its decisions, no task, no commit
        await producer.send(settings.topic("requests"), request)
        await JournalWriter(producer, settings.topic("journal")).append(
            partition, [decision.events]
        )
    async with (
        Orchestrator(settings, demo_registry()) as orchestrator,
        Responder(settings, DEMO_KINDS) as agents,
    ):
        await orchestrator.wait_ready()
        states = await tail.terminal([workflow_id], seconds=30)
    assert states[workflow_id].status is WorkflowStatus.SUCCEEDED
    assert orchestrator.stats.republished == 1
    first = next(t for t in agents.tasks if isinstance(t, TaskRequested))
    assert first.step == "triage"


async def read_all(settings: Settings, name: str, want: int) -> list[Any]:
    """At least ``want`` decoded events of topic ``name``, read from the start."""
    codec = AvroCodec.default()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        topic = settings.topic(name)
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        found: list[Event] = []
        deadline = time.monotonic() + 15
        while len(found) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            found += [codec.decode(r.value) for rs in batch.values() for r in rs]
        return found
    finally:
        await consumer.stop()


def good_spec_with(agent: str) -> WorkflowSpec:
    """A valid one-step spec whose step runs on agent kind ``agent``."""
    return workflow("odd", version=1).step("only", agent=agent).build()


@pytest.mark.timeout(90)
async def test_the_default_deadline_ends_a_workflow_whose_step_no_agent_serves(
    settings: Settings, tail: JournalTail
) -> None:
    """AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS: "every request ends" holds without spec deadlines."""
    spec = workflow("unserved").step("wait", agent="nobody-serves-this").build()
    registry = WorkflowRegistry([spec], default_timeout_ms=1_500)
    async with Orchestrator(settings, registry) as orchestrator, AgentlogClient(settings) as client:
        await orchestrator.wait_ready()
        started = time.monotonic()
        workflow_id = await client.submit("unserved", {})
        states = await tail.terminal([workflow_id], seconds=30)
    assert states[workflow_id].status is WorkflowStatus.FAILED
    failed = next(e for e in tail.of(workflow_id) if isinstance(e, WorkflowFailed))
    assert (failed.step, failed.error_kind) == (None, "timeout")
    assert time.monotonic() - started >= 1.5  # not before its deadline
