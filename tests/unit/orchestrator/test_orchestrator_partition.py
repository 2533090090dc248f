"""Partition state: recovery by folding the journal, and one batch through the core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentlog.agents.orchestrator.inputs import BatchDecider, Outcome
from agentlog.agents.orchestrator.partition import PartitionState
from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import (
    CancelRequested,
    Event,
    StepTimedOut,
    WorkflowRequested,
    WorkflowStarted,
    new_envelope,
)
from agentlog.streams.consumer import Delivered
from agentlog.workflow import (
    RetryPolicy,
    WorkflowRegistry,
    WorkflowStatus,
    next_timer,
    workflow,
)
from agentlog.workflow.demos import PR_DEPLOY, TRIAGE_CHAIN, demo_registry
from tests.unit.workflow.harness import T0, Driver

PARTITIONS = 3
TIMED = (
    workflow("timed", version=1)
    .step("call", agent="k", timeout_ms=5_000, retry=RetryPolicy(jitter=0.0))
    .build()
)


def journal_of(*drivers: Driver) -> list[Event]:
    """The drivers' journals interleaved, as one partition would hold them."""
    journals = [list(d.journal) for d in drivers]
    merged: list[Event] = []
    while any(journals):
        merged.extend(journal.pop(0) for journal in journals if journal)
    return merged


def test_recovery_folds_every_workflow_keys_and_timers() -> None:
    running = Driver(demo_registry(), workflow_id="wf-running")
    running.request("pr-deploy", input=PR_DEPLOY.example_input, idempotency_key="pr-42")
    running.complete("review", {"approved": True})
    done = Driver(demo_registry(), workflow_id="wf-done")
    done.request("triage-chain", input=TRIAGE_CHAIN.example_input)
    done.run_agents(lambda task: {"category": "x", "ticket": "T", "actions": []})
    rejected = Driver(demo_registry(), workflow_id="wf-rejected")
    rejected.request("no-such-definition", input={})

    part = PartitionState.recover(1, journal_of(running, done, rejected))

    assert part.states == {
        "wf-running": running.state,
        "wf-done": done.state,
        "wf-rejected": rejected.state,
    }
    assert part.keys == {"pr-42": "wf-running"}
    assert part.running == 1
    assert part.journal_events == len(running.journal) + len(done.journal) + len(rejected.journal)
    timer = next_timer(running.state)
    assert timer is not None
    assert part.timers.next_due() == timer.due_at
    assert part.due_timers(timer.due_at) == [timer]


def test_a_journal_this_code_cannot_fold_quarantines_only_that_workflow() -> None:
    good = Driver(demo_registry(), workflow_id="wf-good")
    good.request("triage-chain", input=TRIAGE_CHAIN.example_input)
    unreadable = WorkflowStarted(
        envelope=new_envelope("WorkflowStarted", "wf-future", source="orchestrator"),
        workflow_id="wf-future",
        definition="future",
        version=1,
        spec={"format": 99, "written_by": "a newer orchestrator"},
        input={},
        request_event_id="r-1",
    )
    part = PartitionState.recover(0, [unreadable, *good.journal])
    assert set(part.quarantined) == {"wf-future"}
    assert part.states["wf-good"] == good.state


def delivered(event: Event, partition: int, offset: int = 0) -> Delivered:
    topic = "t.requests" if event.envelope.type.endswith("Requested") else "t.responses"
    return Delivered(topic, partition, offset, event.envelope.key.encode(), 0, (), event)


def request(workflow_id: str, definition: str = "triage-chain") -> WorkflowRequested:
    return WorkflowRequested(
        envelope=new_envelope("WorkflowRequested", workflow_id, source="test", occurred_at=T0),
        workflow_id=workflow_id,
        definition=definition,
        input=TRIAGE_CHAIN.example_input,
    )


def decider(now: datetime = T0, registry: WorkflowRegistry | None = None) -> BatchDecider:
    return BatchDecider(registry or demo_registry(), PARTITIONS, lambda: now)


def test_a_request_on_its_partition_is_decided_and_its_task_published() -> None:
    workflow_id = "wf-a"
    home = partition_for(workflow_id, PARTITIONS)
    parts = {home: PartitionState(home)}
    outcome = Outcome()
    decider().decide(parts, [delivered(request(workflow_id), home)], outcome)

    assert [type(e).__name__ for e in outcome.journal[home][0]] == [
        "WorkflowStarted",
        "StepScheduled",
    ]
    tasks = BatchDecider.tasks(parts, outcome)
    assert [(p, t.step, t.agent_kind) for p, t in tasks] == [(home, "triage", "triager")]
    assert parts[home].states[workflow_id].running


def test_inputs_of_other_partitions_are_forwarded_or_skipped() -> None:
    workflow_id = "wf-b"
    home = partition_for(workflow_id, PARTITIONS)
    wrong = (home + 1) % PARTITIONS
    unowned = (home + 2) % PARTITIONS
    parts = {home: PartitionState(home), wrong: PartitionState(wrong)}
    outcome = Outcome()
    misrouted = delivered(request(workflow_id), wrong)
    decider().decide(parts, [misrouted, delivered(request("wf-c"), unowned)], outcome)
    assert outcome.forward == [(misrouted, home)]
    assert outcome.journal == {}
    assert outcome.inputs == 0


def test_a_workflow_cancelled_in_the_same_batch_publishes_no_task_and_reports_it() -> None:
    workflow_id = "wf-d"
    home = partition_for(workflow_id, PARTITIONS)
    parts = {home: PartitionState(home)}
    cancel = CancelRequested(
        envelope=new_envelope("CancelRequested", workflow_id, source="test", occurred_at=T0),
        workflow_id=workflow_id,
        reason="changed my mind",
    )
    outcome = Outcome()
    decider().decide(
        parts, [delivered(request(workflow_id), home), delivered(cancel, home, 1)], outcome
    )
    assert parts[home].states[workflow_id].status is WorkflowStatus.CANCELLED
    assert BatchDecider.tasks(parts, outcome) == []
    assert [(s.step, reason) for s, reason in outcome.ended] == [
        ("triage", f"workflow {workflow_id} is cancelled")
    ]
    assert len(outcome.journal[home]) == 2  # one group per input


def test_due_timers_fire_by_the_runners_clock_and_are_rearmed() -> None:
    workflow_id = "wf-e"
    home = partition_for(workflow_id, PARTITIONS)
    registry = WorkflowRegistry([TIMED])
    parts = {home: PartitionState(home)}
    outcome = Outcome()
    decider(T0, registry).decide(parts, [delivered(request(workflow_id, "timed"), home)], outcome)
    deadline = T0 + timedelta(seconds=5)
    assert parts[home].timers.next_due() == deadline

    early = Outcome()
    decider(deadline - timedelta(milliseconds=1), registry).fire_timers(parts, early)
    assert early.journal == {}

    late = Outcome()
    decider(deadline + timedelta(milliseconds=3), registry).fire_timers(parts, late)
    events = late.journal[home][0]
    assert isinstance(events[0], StepTimedOut)
    assert events[0].envelope.occurred_at == deadline + timedelta(milliseconds=3)
    assert late.health == [("k", False)]
    retry_at = parts[home].timers.next_due()
    assert retry_at is not None
    assert retry_at > deadline  # the retry timer is armed


def test_a_redelivered_batch_decides_nothing() -> None:
    workflow_id = "wf-f"
    home = partition_for(workflow_id, PARTITIONS)
    parts = {home: PartitionState(home)}
    batch = [delivered(request(workflow_id), home)]
    decider().decide(parts, batch, Outcome())
    again = Outcome()
    decider(datetime.now(UTC)).decide(parts, batch, again)
    assert again.journal == {}
    assert again.inputs == 1
    assert again.decided == 0
