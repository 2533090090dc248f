"""Per-agent-kind circuit breakers, kept by the runner (not in the journal).

A kind whose tasks fail ``threshold`` times in a row (retryable failures and
timeouts; a terminal answer such as ``test_failure`` shows the agent works)
*opens*: its new tasks are held back instead of being published to a pool that
is down. After ``cooldown`` the breaker is *half-open*: one held task is
published as a probe. Any success closes it and the held tasks go out; a
failure, or no answer within another ``cooldown``, opens it again.

Held tasks stay ``StepScheduled`` in the journal: their deadlines still run, so
a step with ``timeout_ms`` times out and retries as usual, and a restarted
orchestrator (whose breakers start closed) re-publishes them on recovery.

Every change of state is recorded: :meth:`CircuitBreakers.drain` gives the
:class:`Change` list, which the runner publishes as ``AgentKindCircuitChanged``
on the agents topic (key ``circuit:<kind>``, compacted: the last state per
kind stays). Each orchestrator instance decides with its own breakers (they
start closed); the events are the record, for people and projections.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from agentlog.schemas.events import (
    AgentKindCircuitChanged,
    StepCompleted,
    StepFailed,
    StepTimedOut,
    TaskFailed,
    new_envelope,
)
from agentlog.workflow import Input, JournalEvent, WorkflowState

logger = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """Where one agent kind's breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of one kind's breaker."""

    kind: str
    state: BreakerState
    failures: int
    retry_at: datetime | None
    reason: str
    at: datetime


@dataclass(slots=True)
class _Kind:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    since: datetime | None = None


class CircuitBreakers:
    """One breaker per agent kind.

    Args:
        threshold: consecutive failures that open a breaker; 0 disables breakers.
        cooldown: how long a breaker stays open before a probe, and how long a
            probe may go unanswered.
    """

    def __init__(self, threshold: int, cooldown: timedelta) -> None:
        if threshold < 0:
            raise ValueError(f"threshold={threshold}: use 0 (disabled) or more")
        self.threshold = threshold
        self.cooldown = cooldown
        self._kinds: dict[str, _Kind] = {}
        self._changes: list[Change] = []

    def state(self, kind: str) -> BreakerState:
        """The breaker state of ``kind`` (closed for a kind never seen)."""
        found = self._kinds.get(kind)
        return found.state if found is not None else BreakerState.CLOSED

    def drain(self) -> list[Change]:
        """The state changes since the last call, in order."""
        changes, self._changes = self._changes, []
        return changes

    def record(self, kind: str, *, ok: bool, now: datetime) -> None:
        """Count one outcome of a task of ``kind``."""
        if self.threshold == 0:
            return
        breaker = self._kinds.setdefault(kind, _Kind())
        if ok:
            if breaker.state is not BreakerState.CLOSED:
                logger.warning("circuit of agent kind %s closed: a task succeeded", kind)
                self._changes.append(
                    Change(kind, BreakerState.CLOSED, 0, None, "a task of the kind succeeded", now)
                )
            breaker.state, breaker.failures, breaker.since = BreakerState.CLOSED, 0, None
            return
        breaker.failures += 1
        if breaker.state is BreakerState.HALF_OPEN or (
            breaker.state is BreakerState.CLOSED and breaker.failures >= self.threshold
        ):
            logger.warning(
                "circuit of agent kind %s opened after %s consecutive failures; "
                "holding its tasks for %.1f s",
                kind,
                breaker.failures,
                self.cooldown.total_seconds(),
            )
            reason = (
                "the probe failed"
                if breaker.state is BreakerState.HALF_OPEN
                else f"{breaker.failures} consecutive failures"
            )
            breaker.state, breaker.since = BreakerState.OPEN, now
            self._changes.append(
                Change(kind, BreakerState.OPEN, breaker.failures, now + self.cooldown, reason, now)
            )

    def admit(self, kind: str, now: datetime) -> bool:
        """True when a task of ``kind`` may be published now (a probe counts as admitted)."""
        breaker = self._kinds.get(kind)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return True
        self._expire(kind, breaker, now)
        if (
            breaker.state is BreakerState.OPEN
            and breaker.since is not None
            and now - breaker.since >= self.cooldown
        ):
            logger.warning("circuit of agent kind %s half-open: publishing one probe", kind)
            breaker.state, breaker.since = BreakerState.HALF_OPEN, now
            reason = "cooldown over: one probe task published"
            self._changes.append(
                Change(kind, breaker.state, breaker.failures, now + self.cooldown, reason, now)
            )
            return True
        return False

    def next_change(self) -> datetime | None:
        """The earliest time an open breaker may admit a probe, or a probe expires."""
        times = [
            b.since + self.cooldown
            for b in self._kinds.values()
            if b.state is not BreakerState.CLOSED and b.since is not None
        ]
        return min(times, default=None)

    def _expire(self, kind: str, breaker: _Kind, now: datetime) -> None:
        if breaker.state is not BreakerState.HALF_OPEN or breaker.since is None:
            return
        expired_at = breaker.since + self.cooldown
        if now >= expired_at:
            logger.warning("circuit of agent kind %s: the probe got no answer; open again", kind)
            breaker.state, breaker.since = BreakerState.OPEN, expired_at
            retry_at = expired_at + self.cooldown
            reason = "the probe got no answer"
            self._changes.append(
                Change(kind, breaker.state, breaker.failures, retry_at, reason, expired_at)
            )


def circuit_event(change: Change, orchestrator: str) -> AgentKindCircuitChanged:
    """The ``AgentKindCircuitChanged`` recording ``change`` (key ``circuit:<kind>``)."""
    return AgentKindCircuitChanged(
        envelope=new_envelope(
            "AgentKindCircuitChanged",
            f"circuit:{change.kind}",
            source="orchestrator",
            occurred_at=change.at,
        ),
        agent_kind=change.kind,
        state=change.state.value,
        consecutive_failures=change.failures,
        retry_at=change.retry_at,
        reason=change.reason,
        orchestrator=orchestrator,
    )


def health_signals(
    before: WorkflowState | None, input: Input, events: Sequence[JournalEvent]
) -> Iterator[tuple[str, bool]]:
    """``(agent kind, healthy)`` for each agent outcome recorded by one decision.

    A completed attempt is healthy; a retryable agent failure or a timeout is
    not; a terminal agent failure (a business answer) counts as healthy.
    Signal waits and attempt-0 events (skips, joins) are not agent outcomes.

    Args:
        before: the workflow's state before the decision (it knows each task's kind).
        input: the input decided on.
        events: the decision's events.
    """
    for event in events:
        if isinstance(event, StepCompleted) and event.attempt > 0:
            healthy = True
        elif isinstance(event, StepTimedOut):
            healthy = False
        elif (
            isinstance(event, StepFailed)
            and isinstance(input, TaskFailed)
            and event.task_id == input.task_id
        ):
            healthy = not input.retryable
        else:
            continue
        kind = _kind_of(before, event.step, event.task_id)
        if kind:
            yield kind, healthy


def _kind_of(state: WorkflowState | None, step: str, task_id: str) -> str:
    found = state.steps.get(step) if state is not None else None
    task = found.task(task_id) if found is not None else None
    return task.scheduled.agent_kind if task is not None else ""
