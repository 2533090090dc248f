"""Recording histories in-process, replaying them (verify), and rebuilding them from the logs."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from agentlog.agents.orchestrator.history import (
    History,
    HistoryEntry,
    HistoryError,
    HistoryRecorder,
    record_history,
)
from agentlog.agents.orchestrator.history_export import history_from_logs
from agentlog.agents.orchestrator.replay import (
    MISSING_EVENT,
    divergence_lines,
    verification_to_json,
    verify_history,
)
from agentlog.schemas.events import (
    Event,
    StepScheduled,
    TaskCompleted,
    WorkflowRequested,
    WorkflowStarted,
    new_envelope,
)
from agentlog.workflow import TimerFired, WorkflowRegistry
from agentlog.workflow.demos import PR_DEPLOY, TRIAGE_CHAIN, demo_registry
from tests.replay.record import T0, World, pr_deploy, pr_deploy_retries, triage_chain


def _edit(history: History, index: int, **changes: object) -> History:
    entries = list(history.entries)
    entries[index] = dataclasses.replace(entries[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(history, entries=tuple(entries))


# -- recording -----------------------------------------------------------------------------


def test_record_history_runs_a_list_of_inputs_through_the_core() -> None:
    envelope = new_envelope("WorkflowRequested", "wf-list", source="test", occurred_at=T0)
    request = WorkflowRequested(
        envelope=envelope,
        workflow_id="wf-list",
        definition="triage-chain",
        input=TRIAGE_CHAIN.example_input,
    )
    first = record_history([request], registry=demo_registry())
    scheduled = first.entries[0].decisions[1]
    assert isinstance(scheduled, StepScheduled)
    answer = TaskCompleted(
        envelope=new_envelope(
            "TaskCompleted", "wf-list", source="agent", occurred_at=T0 + timedelta(seconds=2)
        ),
        task_id=scheduled.task_id,
        workflow_id="wf-list",
        step=scheduled.step,
        attempt=1,
        output={"category": "performance", "ticket": "T-1042"},
        agent_id="a-1",
    )
    later = T0 + timedelta(seconds=5)

    history = record_history([request, (answer, later)], registry=demo_registry(), note="n")

    assert [e.decided_at for e in history.entries] == [T0, later]  # own time, or the one given
    assert [type(e).__name__ for e in history.entries[1].decisions] == [
        "StepCompleted",
        "StepScheduled",
    ]
    assert history.definition == "triage-chain"
    assert history.version == 1
    assert history.note == "n"
    assert verify_history(history, demo_registry()).ok


def test_a_recorder_refuses_inputs_of_another_workflow_and_naive_times() -> None:
    recorder = HistoryRecorder(demo_registry(), "wf-a")
    timer = TimerFired(workflow_id="wf-b", timer_id="workflow-timeout", due_at=T0)
    with pytest.raises(HistoryError, match="belongs to workflow 'wf-b'"):
        recorder.feed(timer, T0)
    with pytest.raises(HistoryError, match="naive"):
        recorder.feed(dataclasses.replace(timer, workflow_id="wf-a"), T0.replace(tzinfo=None))
    with pytest.raises(HistoryError, match="no inputs"):
        record_history([], registry=demo_registry())


# -- verify ----------------------------------------------------------------------------------


def test_a_history_replays_with_the_same_decisions() -> None:
    history = pr_deploy_retries()

    result = verify_history(history, demo_registry())

    assert result.ok
    assert result.checked == len(history.entries)
    assert verification_to_json(result)["status"] == "ok"


def test_a_changed_spec_under_the_same_name_and_version_diverges_at_the_request() -> None:
    history = pr_deploy()
    review = PR_DEPLOY.steps[0]
    slower = dataclasses.replace(
        PR_DEPLOY, steps=(dataclasses.replace(review, timeout_ms=1_200_000), *PR_DEPLOY.steps[1:])
    )

    result = verify_history(history, WorkflowRegistry([slower]))

    divergence = result.divergence
    assert divergence is not None
    assert divergence.index == 0
    assert isinstance(divergence.input, WorkflowRequested)
    fields = [(d.event, d.field) for d in divergence.differences]
    assert fields == [(0, "spec"), (1, "deadline")]  # the recorded spec and the step deadline
    assert result.checked == 0


def test_a_missing_an_extra_and_a_retyped_event_are_reported() -> None:
    history = triage_chain()
    recorded = history.entries[1].decisions

    fewer = verify_history(_edit(history, 1, decisions=recorded[:1]), demo_registry()).divergence
    assert fewer is not None
    assert [(d.event, d.field) for d in fewer.differences] == [(1, MISSING_EVENT)]
    assert fewer.differences[0].expected is None  # only the current code decides it
    assert "only decided by the current code" in "\n".join(divergence_lines(fewer))

    more = verify_history(
        _edit(history, 1, decisions=(*recorded, recorded[0])), demo_registry()
    ).divergence
    assert more is not None
    assert [(d.event, d.field, d.actual) for d in more.differences] == [(2, MISSING_EVENT, None)]

    swapped = verify_history(
        _edit(history, 1, decisions=(recorded[1], recorded[0])), demo_registry()
    ).divergence
    assert swapped is not None
    assert [(d.field, d.expected, d.actual) for d in swapped.differences] == [
        ("type", "StepScheduled", "StepCompleted"),
        ("type", "StepCompleted", "StepScheduled"),
    ]


def test_a_decision_time_that_differs_shows_in_the_envelope_and_the_deadline() -> None:
    history = pr_deploy()
    entry = history.entries[1]

    result = verify_history(
        _edit(history, 1, decided_at=entry.decided_at + timedelta(seconds=1)), demo_registry()
    )

    assert result.divergence is not None
    assert result.divergence.index == 1
    fields = {(d.event, d.field) for d in result.divergence.differences}
    assert fields == {
        (0, "envelope.occurred_at"),
        (1, "envelope.occurred_at"),
        (1, "deadline"),
    }


def test_an_input_the_recording_ignored_but_the_code_decides_on_diverges() -> None:
    history = triage_chain()
    redelivered = history.entries[2]
    assert not redelivered.decisions  # recorded: a duplicate decides nothing
    first = history.entries[1]

    # a history whose recording decided nothing on the first answer (as if it had been lost)
    result = verify_history(_edit(history, 1, decisions=()), demo_registry())

    assert result.divergence is not None
    assert result.divergence.index == 1
    assert all(d.field == MISSING_EVENT for d in result.divergence.differences)
    assert len(result.divergence.actual) == len(first.decisions)


def test_a_history_of_a_definition_the_registry_lacks_is_an_error() -> None:
    with pytest.raises(HistoryError, match=r"'pr-deploy' v1.*no version.*--definitions"):
        verify_history(pr_deploy(), WorkflowRegistry())
    newer = dataclasses.replace(PR_DEPLOY, version=2)
    with pytest.raises(HistoryError, match="versions 2"):
        verify_history(pr_deploy(), WorkflowRegistry([newer]))


def test_a_request_with_an_inline_spec_needs_no_registry() -> None:
    world = World("wf-inline", registry=WorkflowRegistry())
    envelope = world.envelope("WorkflowRequested", "client")
    world.send(
        WorkflowRequested(
            envelope=envelope,
            workflow_id="wf-inline",
            spec=TRIAGE_CHAIN.to_json(),
            input=TRIAGE_CHAIN.example_input,
        )
    )
    world.run()

    assert verify_history(world.history("inline"), WorkflowRegistry()).ok


# -- rebuilding a history from the topics --------------------------------------------------


def _inputs(history: History) -> list[Event]:
    return [e.input for e in history.entries if not isinstance(e.input, TimerFired)]  # type: ignore[misc]


def test_the_logs_give_back_every_input_that_decided_something() -> None:
    recorded = pr_deploy_retries()
    other = pr_deploy()  # another workflow of the partition, interleaved
    journal: list[Event] = []
    for mine, theirs in zip(recorded.entries, [*other.entries, *[None] * 10], strict=False):
        journal.extend(mine.decisions)
        if theirs is not None:
            journal.extend(theirs.decisions)
    journal.insert(3, journal[2])  # a producer retry appended one event twice
    inputs = _inputs(recorded) + _inputs(other)
    random.Random(7).shuffle(inputs)  # requests and responses: two topics, any order

    rebuilt = history_from_logs(recorded.workflow_id, journal, inputs, source="logs")

    assert rebuilt is not None
    assert rebuilt.entries == tuple(e for e in recorded.entries if e.decisions)
    assert any(isinstance(e.input, TimerFired) for e in rebuilt.entries)  # retries came back
    assert rebuilt.source == "logs"
    assert verify_history(rebuilt, demo_registry()).ok


def test_the_logs_give_back_the_idempotency_key_claim_of_a_duplicate_request() -> None:
    world = World("wf-dup", idempotency_keys={"key-1": "wf-first"})
    world.request("pr-deploy", {"repo": "a/b", "pr": 1}, idempotency_key="key-1")
    recorded = world.history("duplicate")
    first = World("wf-first")
    first.request("pr-deploy", {"repo": "a/b", "pr": 1}, idempotency_key="key-1")
    started = first.history("first").journal[0]
    assert isinstance(started, WorkflowStarted)

    rebuilt = history_from_logs("wf-dup", [started, *recorded.journal], _inputs(recorded))

    assert rebuilt is not None
    assert rebuilt.entries[0].idempotency_keys == {"key-1": "wf-first"}
    assert rebuilt.entries == recorded.entries
    assert verify_history(rebuilt, demo_registry()).ok
    # without the other workflow's WorkflowStarted the claim is unknown: the replay starts it
    alone = history_from_logs("wf-dup", recorded.journal, _inputs(recorded))
    assert alone is not None
    assert not verify_history(alone, demo_registry()).ok


def test_a_decision_whose_input_is_gone_names_the_likely_cause() -> None:
    recorded = triage_chain()
    inputs = _inputs(recorded)[1:]  # the request was deleted by retention

    with pytest.raises(HistoryError, match=r"decision 0 \(WorkflowStarted.*retention"):
        history_from_logs(recorded.workflow_id, recorded.journal, inputs)
    assert history_from_logs("nobody", recorded.journal, inputs) is None


def test_entries_compare_by_value() -> None:
    entry = triage_chain().entries[0]
    assert entry == HistoryEntry(
        input=entry.input,
        decided_at=entry.decided_at,
        decisions=entry.decisions,
        idempotency_keys={},
    )
