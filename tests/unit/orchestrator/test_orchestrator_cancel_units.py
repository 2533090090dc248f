"""The TaskCancelled the orchestrator derives from a StepScheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentlog.schemas.events import StepScheduled, derive_event_id
from agentlog.workflow import cancellation_for, cancellations_to_publish
from tests.support.samples import sample_event


def test_the_cancellation_is_deterministic_and_follows_the_task() -> None:
    scheduled = sample_event("StepScheduled")
    assert isinstance(scheduled, StepScheduled)
    cancelled = cancellation_for(scheduled, "workflow wf is cancelled")
    assert cancelled == cancellation_for(scheduled, "workflow wf is cancelled")
    assert cancelled.envelope.event_id == derive_event_id(scheduled.envelope.event_id, 1)
    assert cancelled.envelope.key == scheduled.workflow_id
    assert cancelled.envelope.causation_id == scheduled.envelope.event_id
    assert (cancelled.task_id, cancelled.step, cancelled.attempt, cancelled.agent_kind) == (
        scheduled.task_id,
        scheduled.step,
        scheduled.attempt,
        scheduled.agent_kind,
    )


def test_nothing_to_cancel_without_a_terminal_state() -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    assert cancellations_to_publish(None, ended_since=since) == ()
