"""The human-readable lines of `agentlog watch`."""

from __future__ import annotations

from agentlog.client_cli import _event_line
from tests.support.samples import sample_event


def test_watch_lines_name_the_lock_and_its_token() -> None:
    awaited = _event_line(sample_event("LockAwaited"))
    acquired = _event_line(sample_event("LockAcquired"))
    assert "LockAwaited" in awaited
    assert "step=summarise" in awaited
    assert "resource=db:customers/" in awaited
    assert "resource=db:customers/" in acquired
    assert "fencing_token=7" in acquired


def test_watch_lines_keep_attempt_kind_and_error() -> None:
    line = _event_line(sample_event("StepFailed"))
    assert "attempt=2" in line
    assert "error_kind=agent_error" in line
    assert "message=model overloaded" in line
