"""Agent failures, retries, durable timeouts, cancellation, signals and circuit breakers."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator import BreakerState, Orchestrator, OrchestratorConfig
from agentlog.client import AgentlogClient
from agentlog.schemas.events import (
    AgentKindCircuitChanged,
    Event,
    StepCompleted,
    StepFailed,
    StepRetryScheduled,
    StepScheduled,
    StepTimedOut,
    TaskRequested,
    WorkflowCancelled,
    WorkflowFailed,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS
from agentlog.workflow import RetryPolicy, WorkflowRegistry, WorkflowStatus, workflow
from tests.integration.orchestrator.harness import (
    Done,
    Fail,
    JournalTail,
    Reply,
    Responder,
    poll_until,
    response,
)

NO_JITTER = {"jitter": 0.0, "initial_backoff_ms": 100}

FLAKY = (
    workflow("flaky", version=1)
    .step("call", agent="flaky", retry=RetryPolicy(max_attempts=3, **NO_JITTER))
    .build()
)
SLOW = (
    workflow("slow", version=1)
    .step("call", agent="sleepy", timeout_ms=1000, retry=RetryPolicy(max_attempts=2, **NO_JITTER))
    .build()
)
DOOMED = workflow("doomed", version=1).step("call", agent="refuser").build()
HANG = workflow("hang", version=1).step("call", agent="hang").build()
APPROVAL = (
    workflow("approval", version=1, output="${steps.publish.output}")
    .step("draft", agent="drafter")
    .step("approve", signal="approve", after="draft")
    .step("publish", agent="publisher", after="approve", input={"by": "${steps.approve.output.by}"})
    .build()
)
FRAGILE = (
    workflow("fragile", version=1)
    .step(
        "call",
        agent="fragile",
        retry=RetryPolicy(max_attempts=6, jitter=0.0, initial_backoff_ms=50),
    )
    .build()
)
KINDS = ["flaky", "sleepy", "refuser", "hang", "drafter", "publisher", "fragile"]


def agents(task: TaskRequested) -> Reply:
    """Each kind's scripted behaviour, by attempt."""
    match task.agent_kind:
        case "flaky":
            return (
                Fail("overloaded", retryable=True)
                if task.attempt == 1
                else Done({"attempt": task.attempt})
            )
        case "sleepy":
            return None if task.attempt == 1 else Done({"attempt": task.attempt})
        case "refuser":
            return Fail("bad_input", retryable=False, message="input is not a PR")
        case "fragile":
            return (
                Fail("down", retryable=True)
                if task.attempt <= 2
                else Done({"attempt": task.attempt})
            )
        case "drafter":
            return Done({"text": "draft"})
        case "publisher":
            return Done({"published_by": task.input["by"]})  # type: ignore[index,call-overload]
    return None  # "hang": never answers


def registry() -> WorkflowRegistry:
    return WorkflowRegistry([FLAKY, SLOW, DOOMED, HANG, APPROVAL, FRAGILE])


def kinds_of(tail: JournalTail, workflow_id: str) -> list[str]:
    return [
        f"{type(e).__name__}{':' + str(e.attempt) if hasattr(e, 'attempt') else ''}"
        for e in tail.of(workflow_id)
    ]


@pytest.mark.timeout(90)
async def test_retryable_failures_retry_timeouts_fire_and_terminal_failures_fail(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, registry(), config=OrchestratorConfig(breaker_threshold=0)) as orch,
        Responder(settings, KINDS, agents),
        AgentlogClient(settings) as client,
    ):
        await orch.wait_ready()
        flaky = await client.submit("flaky", {})
        slow = await client.submit("slow", {})
        doomed = await client.submit("doomed", {})
        states = await tail.terminal([flaky, slow, doomed], seconds=30)

    assert states[flaky].status is WorkflowStatus.SUCCEEDED
    assert states[flaky].output == {"call": {"attempt": 2}}
    assert kinds_of(tail, flaky) == [
        "WorkflowStarted",
        "StepScheduled:1",
        "StepFailed:1",
        "StepRetryScheduled:1",
        "StepScheduled:2",
        "StepCompleted:2",
        "WorkflowSucceeded",
    ]
    failed = next(e for e in tail.of(flaky) if isinstance(e, StepFailed))
    assert failed.retryable
    assert failed.error_kind == "overloaded"

    # attempt 1 is never answered: the durable deadline timer times it out, attempt 2 answers
    assert states[slow].status is WorkflowStatus.SUCCEEDED
    assert states[slow].output == {"call": {"attempt": 2}}
    timed_out = next(e for e in tail.of(slow) if isinstance(e, StepTimedOut))
    scheduled = next(e for e in tail.of(slow) if isinstance(e, StepScheduled))
    assert scheduled.deadline is not None
    assert timed_out.deadline == scheduled.deadline
    lateness = (timed_out.envelope.occurred_at - timed_out.deadline).total_seconds()
    print(f"step timeout fired {lateness * 1000:.0f} ms after its deadline")
    assert 0 <= lateness < 1.0, lateness
    retry = next(e for e in tail.of(slow) if isinstance(e, StepRetryScheduled))
    assert retry.next_attempt == 2

    assert states[doomed].status is WorkflowStatus.FAILED
    ended = next(e for e in tail.of(doomed) if isinstance(e, WorkflowFailed))
    assert (ended.step, ended.error_kind) == ("call", "bad_input")
    assert not any(isinstance(e, StepRetryScheduled) for e in tail.of(doomed))


@pytest.mark.timeout(90)
async def test_cancellation_ends_a_running_workflow_and_signals_reach_waiting_steps(
    settings: Settings, tail: JournalTail
) -> None:
    async with (
        Orchestrator(settings, registry()) as orch,
        Responder(settings, KINDS, agents) as responder,
        AgentlogClient(settings) as client,
        EventProducer(settings) as producer,
    ):
        await orch.wait_ready()
        hang = await client.submit("hang", {})
        approval = await client.submit("approval", {})
        await client.signal(approval, "approve", {"by": "alice"})
        await tail.until(lambda t: any(isinstance(e, StepScheduled) for e in t.of(hang)), 20)
        await client.cancel(hang, "operator changed their mind")
        states = await tail.terminal([hang, approval], seconds=30)
        # a late answer from the agent changes nothing
        task = next(t for t in responder.tasks if t.workflow_id == hang)
        await producer.send(settings.topic("responses"), response(task, Done({"late": True})))
        await asyncio.sleep(1.0)

    assert states[hang].status is WorkflowStatus.CANCELLED
    cancelled = next(e for e in tail.of(hang) if isinstance(e, WorkflowCancelled))
    assert cancelled.reason == "operator changed their mind"
    assert isinstance(tail.of(hang)[-1], WorkflowCancelled)
    assert not any(isinstance(e, StepCompleted) for e in tail.of(hang))
    assert orch.publisher.stats.cancelled == 1  # one TaskCancelled for the open task

    assert states[approval].status is WorkflowStatus.SUCCEEDED
    assert states[approval].output == {"published_by": "alice"}


@pytest.mark.timeout(90)
async def test_a_failing_agent_kind_opens_its_breaker_which_holds_tasks_until_a_probe(
    settings: Settings, tail: JournalTail
) -> None:
    config = OrchestratorConfig(breaker_threshold=2, breaker_cooldown_ms=1000)
    async with (
        Orchestrator(settings, registry(), config=config) as orch,
        Responder(settings, KINDS, agents) as responder,
        AgentlogClient(settings) as client,
    ):
        await orch.wait_ready()
        fragile = await client.submit("fragile", {})
        await tail.until(
            lambda t: sum(isinstance(e, StepFailed) for e in t.of(fragile)) == 2, seconds=20
        )
        # attempt 3 is scheduled after a 100 ms backoff ...
        await poll_until(lambda: orch.publisher.held("fragile") > 0, seconds=5)
        held_while_open = orch.publisher.held("fragile")  # ... and held, not published
        state_while_open = orch.breakers.state("fragile")
        states = await tail.terminal([fragile], seconds=20)

    assert states[fragile].status is WorkflowStatus.SUCCEEDED
    assert states[fragile].output == {"call": {"attempt": 3}}
    assert state_while_open is BreakerState.OPEN
    assert held_while_open == 1
    assert orch.breakers.state("fragile") is BreakerState.CLOSED
    third = next(e for e in tail.of(fragile) if isinstance(e, StepScheduled) and e.attempt == 3)
    held_for = (responder.received[third.task_id] - third.envelope.occurred_at).total_seconds()
    assert held_for >= 0.5, f"attempt 3 reached the agent {held_for:.2f} s after it was scheduled"
    # every change is recorded on the agents topic, keyed by kind
    circuits = [e for e in await read_agents_topic(settings) if e.envelope.key == "circuit:fragile"]
    assert [e.state for e in circuits] == ["open", "half_open", "closed"]
    assert all(isinstance(e, AgentKindCircuitChanged) for e in circuits)
    assert orch.stats.circuit_changes == 3


async def read_agents_topic(settings: Settings) -> list[Event]:
    """Every event on the agents topic now."""
    topic = settings.topic(AGENTS.name)
    async with EventProducer(settings) as producer:
        tps = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    async with EventConsumer(settings, group_id=None, dead_letters=None) as consumer:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Event] = []
        async with asyncio.timeout(20):
            while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items()):
                found += [d.event for d in await consumer.poll(timeout_ms=200)]
        return found
