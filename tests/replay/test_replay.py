"""The committed histories replay with the same decisions; the divergent one is caught.

The files under ``histories/`` and ``divergent/`` were recorded by
``python -m tests.replay.record`` with the code of their commit. A failure here
means the current orchestrator core decides differently on a recorded input:
either a bug, or an intended change (then regenerate and say why in the commit).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentlog.agents.orchestrator.history import History
from agentlog.agents.orchestrator.history_file import history_files, read_history
from agentlog.agents.orchestrator.replay import verify_history
from agentlog.cli import main
from agentlog.schemas.events import (
    CancelRequested,
    LockDenied,
    LockGranted,
    SignalSent,
    TaskFailed,
    TaskProgress,
    WorkflowRejected,
)
from agentlog.workflow import TimerFired
from agentlog.workflow.demos import DEMOS, demo_registry
from tests.replay.record import (
    DIVERGENT,
    DIVERGENT_EVENT,
    DIVERGENT_FIELD,
    DIVERGENT_INDEX,
    DIVERGENT_NAME,
    HISTORIES,
)

pytestmark = pytest.mark.unit

COMMITTED = history_files(HISTORIES)
DIVERGENT_FILE = DIVERGENT / f"{DIVERGENT_NAME}.avro"


def _load_all() -> list[History]:
    return [read_history(path) for path in COMMITTED]


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_every_committed_history_makes_the_same_decisions(path: Path) -> None:
    history = read_history(path)

    result = verify_history(history, demo_registry())

    assert result.divergence is None, "\n".join(
        [f"{path.name} diverged at input {result.divergence.index}:"]  # type: ignore[union-attr]
        + [f"  {d}" for d in result.divergence.differences]  # type: ignore[union-attr]
    )
    assert result.checked == len(history.entries)


def test_the_deliberately_divergent_history_is_detected_at_the_edited_input() -> None:
    history = read_history(DIVERGENT_FILE)
    assert "DELIBERATELY DIVERGENT" in history.note

    result = verify_history(history, demo_registry())

    divergence = result.divergence
    assert divergence is not None
    assert (divergence.index, DIVERGENT_INDEX) == (2, 2)  # the tests answer, third input
    assert result.checked == 2
    assert [(d.event, d.field) for d in divergence.differences] == [
        (DIVERGENT_EVENT, DIVERGENT_FIELD)
    ]
    difference = divergence.differences[0]
    assert isinstance(difference.expected, dict)
    assert isinstance(difference.actual, dict)
    assert difference.expected["environment"] == "production"  # what the edit recorded
    assert difference.actual["environment"] == "staging"  # what the code decides
    assert not divergence.problem


def test_the_committed_histories_cover_every_demo_and_the_inputs_the_runner_feeds() -> None:
    histories = _load_all()
    ran = {h.definition for h in histories}
    assert ran >= {spec.name for spec in DEMOS}
    inputs = [entry.input for h in histories for entry in h.entries]
    kinds = {type(i) for i in inputs}
    assert kinds >= {
        TaskFailed,
        TaskProgress,
        LockGranted,
        LockDenied,
        SignalSent,
        CancelRequested,
        TimerFired,
    }
    timers = {i.timer_id.split(":")[0] for i in inputs if isinstance(i, TimerFired)}
    assert timers >= {"retry", "deadline"}  # a retry and a timeout
    decisions = [type(e).__name__ for h in histories for e in h.journal]
    assert {"StepRetryScheduled", "StepTimedOut", "WorkflowFailed", "WorkflowCancelled"} <= set(
        decisions
    )
    assert any(isinstance(e, WorkflowRejected) for h in histories for e in h.journal)
    ignored = [entry for h in histories for entry in h.entries if not entry.decisions]
    assert len(ignored) >= 4  # progress, a redelivery, late answers: recorded as deciding nothing


def test_agentlog_verify_passes_the_committed_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(HISTORIES)]) == 0

    out = capsys.readouterr().out
    assert out.count("ok ") == len(COMMITTED)
    assert f"{len(COMMITTED)} histories: {len(COMMITTED)} ok, 0 diverged" in out


def test_agentlog_verify_reports_the_divergent_history_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["verify", str(DIVERGENT_FILE), str(HISTORIES), "--json"]) == 1

    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["counts"] == {"ok": len(COMMITTED), "diverged": 1, "error": 0}
    (diverged,) = [h for h in report["histories"] if h["status"] == "diverged"]
    assert diverged["file"] == str(DIVERGENT_FILE)
    divergence = diverged["divergence"]
    assert divergence["index"] == DIVERGENT_INDEX
    assert divergence["input"]["type"] == "TaskCompleted"
    assert [e["type"] for e in divergence["expected"]] == [
        "StepCompleted",
        "StepScheduled",
        "LockAwaited",
    ]
    assert [e["type"] for e in divergence["actual"]] == [e["type"] for e in divergence["expected"]]
    assert divergence["differences"] == [
        {
            "event": DIVERGENT_EVENT,
            "field": DIVERGENT_FIELD,
            "expected": {"environment": "production", "pr": 42, "repo": "acme/shop"},
            "actual": {"environment": "staging", "pr": 42, "repo": "acme/shop"},
        }
    ]


def test_agentlog_verify_prints_the_divergence_field_by_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["verify", str(DIVERGENT_FILE)]) == 1

    out = capsys.readouterr().out
    assert f"DIVERGED  {DIVERGENT_FILE}" in out
    assert f"input {DIVERGENT_INDEX}: TaskCompleted" in out
    assert "event 1 (StepScheduled deploy) input:" in out
    assert '"environment": "production"' in out
    assert '"environment": "staging"' in out
