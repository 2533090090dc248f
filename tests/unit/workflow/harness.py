"""Drive one workflow through the pure core the way the runner does, without Kafka.

``Driver.send`` calls ``handle``, appends the decisions to an in-memory journal
and checks on every input that folding the whole journal from scratch gives the
state ``handle`` returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from agentlog.schemas.events import (
    CancelRequested,
    Envelope,
    Event,
    JsonValue,
    LockDenied,
    LockGranted,
    LockRequested,
    SignalSent,
    StepScheduled,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    WorkflowRequested,
    new_envelope,
)
from agentlog.workflow import (
    Input,
    JournalEvent,
    TaskState,
    TimerFired,
    WorkflowRegistry,
    WorkflowSpec,
    WorkflowState,
    fold,
    handle,
    lock_requests_to_publish,
    next_timer,
    tasks_to_publish,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TEST_NAMESPACE = uuid.UUID("0b8f1f8e-6d0c-4d43-9d59-3f6f7b1b2a11")

Agent = Callable[[TaskRequested], JsonValue]


def summary(events: Iterable[Event]) -> list[str]:
    """``["StepScheduled review", "WorkflowSucceeded"]``: type and step of each event."""
    return [
        f"{type(e).__name__} {step}" if (step := getattr(e, "step", None)) else type(e).__name__
        for e in events
    ]


class Driver:
    """One workflow, its journal and its inputs; the clock moves only when told."""

    def __init__(
        self,
        registry: WorkflowRegistry | None = None,
        *,
        workflow_id: str = "wf-1",
        now: datetime = T0,
        idempotency_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else WorkflowRegistry()
        self.workflow_id = workflow_id
        self.now = now
        self.keys = idempotency_keys
        self.state: WorkflowState | None = None
        self.journal: list[JournalEvent] = []
        self.inputs: list[Input] = []
        self._counter = 0
        self.last_token = 0

    # --- sending inputs ------------------------------------------------------

    def send(self, item: Input) -> list[JournalEvent]:
        decision = handle(
            self.state, item, registry=self.registry, now=self.now, idempotency_keys=self.keys
        )
        self.journal.extend(decision.events)
        assert fold(self.journal) == decision.state, "folding the journal differs from decide"
        self.state = decision.state
        self.inputs.append(item)
        return list(decision.events)

    def envelope(self, type_name: str) -> Envelope:
        self._counter += 1
        event_id = str(uuid.uuid5(TEST_NAMESPACE, f"{self.workflow_id}/{self._counter}"))
        return new_envelope(
            type_name, self.workflow_id, source="test", event_id=event_id, occurred_at=self.now
        )

    def request(
        self,
        definition: str | None = None,
        *,
        input: JsonValue = None,
        spec: WorkflowSpec | JsonValue = None,
        version: int | None = None,
        priority: int = 3,
        idempotency_key: str | None = None,
        workflow_id: str | None = None,
    ) -> list[JournalEvent]:
        spec_json = spec.to_json() if isinstance(spec, WorkflowSpec) else spec
        request = WorkflowRequested(
            envelope=self.envelope("WorkflowRequested"),
            workflow_id=self.workflow_id if workflow_id is None else workflow_id,
            definition=definition,
            version=version,
            spec=spec_json,
            input=input,
            priority=priority,
            idempotency_key=idempotency_key,
        )
        return self.send(request)

    def complete(self, step: str, output: JsonValue = None, *, item: int = 0) -> list[JournalEvent]:
        task = self.task(step, item)
        return self.send(self.completed(task.scheduled, output))

    def completed(self, task: StepScheduled | TaskRequested, output: JsonValue) -> TaskCompleted:
        return TaskCompleted(
            envelope=self.envelope("TaskCompleted"),
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            step=task.step,
            attempt=task.attempt,
            output=output,
            agent_id="agent-1",
        )

    def fail(
        self,
        step: str,
        *,
        kind: str = "agent_error",
        retryable: bool = True,
        message: str = "boom",
        item: int = 0,
    ) -> list[JournalEvent]:
        task = self.task(step, item).scheduled
        return self.send(
            TaskFailed(
                envelope=self.envelope("TaskFailed"),
                task_id=task.task_id,
                workflow_id=task.workflow_id,
                step=task.step,
                attempt=task.attempt,
                error_kind=kind,
                message=message,
                retryable=retryable,
                agent_id="agent-1",
            )
        )

    def lock_request(self, step: str, *, item: int = 0) -> LockRequested:
        """The request the runner sends for the lock the attempt of ``step`` waits for."""
        requests = [
            r
            for r in lock_requests_to_publish(self.state)
            if r.requester == f"{self.workflow_id}/{step}"
            and r.request_id.startswith(self.task(step, item).task_id + "/")
        ]
        assert requests, f"step {step!r} item {item} waits for no lock"
        return requests[0]

    def grant(
        self, step: str, *, item: int = 0, token: int | None = None, lease_ms: int = 60_000
    ) -> list[JournalEvent]:
        """The lock manager grants the lock the attempt of ``step`` waits for."""
        return self.send(self.granted(self.lock_request(step, item=item), token, lease_ms))

    def granted(
        self, request: LockRequested, token: int | None = None, lease_ms: int = 60_000
    ) -> LockGranted:
        self.last_token = token if token is not None else self.last_token + 1
        return LockGranted(
            envelope=self.envelope("LockGranted"),
            resource=request.resource,
            request_id=request.request_id,
            requester=request.requester,
            fencing_token=self.last_token,
            lease_expires_at=self.now + timedelta(milliseconds=lease_ms),
            workflow_id=request.workflow_id,
        )

    def deny(self, step: str, *, item: int = 0, reason: str = "wait timeout") -> list[JournalEvent]:
        """The lock manager denies the lock the attempt of ``step`` waits for."""
        return self.send(self.denied(self.lock_request(step, item=item), reason))

    def denied(self, request: LockRequested, reason: str) -> LockDenied:
        return LockDenied(
            envelope=self.envelope("LockDenied"),
            resource=request.resource,
            request_id=request.request_id,
            requester=request.requester,
            reason=reason,
            workflow_id=request.workflow_id,
        )

    def progress(self, step: str, *, item: int = 0) -> list[JournalEvent]:
        task = self.task(step, item).scheduled
        return self.send(
            TaskProgress(
                envelope=self.envelope("TaskProgress"),
                task_id=task.task_id,
                workflow_id=task.workflow_id,
                step=task.step,
                attempt=task.attempt,
                fraction=0.5,
                agent_id="agent-1",
            )
        )

    def signal(self, name: str, payload: JsonValue) -> list[JournalEvent]:
        return self.send(
            SignalSent(
                envelope=self.envelope("SignalSent"),
                workflow_id=self.workflow_id,
                signal=name,
                payload=payload,
            )
        )

    def cancel(self, reason: str = "") -> list[JournalEvent]:
        return self.send(
            CancelRequested(
                envelope=self.envelope("CancelRequested"),
                workflow_id=self.workflow_id,
                reason=reason,
            )
        )

    def fire(self, timer: TimerFired | None = None) -> list[JournalEvent]:
        """Move the clock to the next (or the given) timer and feed it."""
        timer = timer or next_timer(self.state)
        assert timer is not None, "no pending timer"
        self.now = max(self.now, timer.due_at)
        return self.send(timer)

    def tick(self, ms: int) -> None:
        self.now += timedelta(milliseconds=ms)

    def redeliver(self, index: int = -1) -> list[JournalEvent]:
        return self.send(self.inputs[index])

    # --- looking at the state --------------------------------------------------

    @property
    def current(self) -> WorkflowState:
        assert self.state is not None
        return self.state

    def task(self, step: str, item: int = 0) -> TaskState:
        tasks = self.current.steps[step].tasks
        assert len(tasks) > item, f"step {step!r} has no item {item}: {self.current.steps[step]}"
        return tasks[item]

    def run_agents(self, agent: Agent, *, limit: int = 500) -> None:
        """Answer every published task with ``agent`` until the workflow ends."""
        for _ in range(limit):
            if not self.current.running:
                return
            tasks = tasks_to_publish(self.state)
            locks = lock_requests_to_publish(self.state)
            if tasks:
                self.send(self.completed(tasks[0], agent(tasks[0])))
            elif locks:  # the lock manager: every lock is free
                self.send(self.granted(locks[0]))
            elif next_timer(self.state) is not None:
                self.fire()
            else:
                raise AssertionError(f"workflow waits for something else: {self.current}")
        raise AssertionError("workflow did not end")
