"""Properties of the core over random runs.

A run picks a workflow, then a random sequence of what the outside world can
do: agents answer or fail (retryably or not), the lock manager grants or
denies steps' locks, timers fire, signals and cancellations arrive, and old
inputs are delivered again. Checked throughout:

* folding the journal gives the state the decide loop built (``Driver.send``);
* the same input on the same state gives the same events, ids included, and
  so does the state recovered by folding the journal;
* delivering any earlier input again decides nothing;
* replaying all inputs from scratch gives the same journal;
* the workflow always reaches a terminal state when the world cooperates, and
  never fails for an internal reason;
* no state handed out changes afterwards (``evolve`` writes into its own fresh
  copies only), and ``next_timer`` is the earliest of ``pending_timers``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog.schemas.events import JsonObject, JsonValue, WorkflowFailed
from agentlog.workflow import (
    RetryPolicy,
    TaskStatus,
    TimerFired,
    WorkflowRegistry,
    WorkflowSpec,
    fold,
    handle,
    lock_requests_to_publish,
    next_timer,
    open_tasks,
    pending_timers,
    repeat,
    tasks_to_publish,
    workflow,
)
from agentlog.workflow.demos import DEMOS

from .harness import Driver

MIXED = (
    workflow("mixed", timeout_ms=3_600_000)
    .step(
        "start",
        agent="k",
        timeout_ms=30_000,
        retry=RetryPolicy(max_attempts=3, non_retryable=("invalid_input",)),
    )
    .step(
        "fan",
        agent="k",
        after="start",
        for_each="input.items",
        continue_on_failure=True,
        retry=RetryPolicy(max_attempts=2),
    )
    .step("gate", signal="go", after="start", timeout_ms=600_000)
    .step("maybe", agent="k", after=["fan", "gate"], when="steps.gate.output.ok")
    .step("loop_a", agent="k", after="maybe", input="${iteration}")
    .step(
        "loop_b",
        agent="k",
        after="loop_a",
        timeout_ms=5_000,
        repeat=repeat("loop_a", while_="steps.loop_b.output.again", max_iterations=3),
    )
    .build()
)
SPECS: tuple[WorkflowSpec, ...] = (*DEMOS, MIXED)
INPUTS: dict[str, JsonValue] = {s.name: s.example_input for s in DEMOS} | {
    "mixed": {"items": [1, 2, 3]}
}
REGISTRY = WorkflowRegistry(SPECS)
HAPPY: dict[str, JsonValue] = {
    "approved": True,
    "passed": True,
    "issues_found": False,
    "again": False,
    "ok": True,
}


def _as_json(value: dict[str, bool]) -> JsonValue:
    obj: JsonObject = {}
    obj.update(value)
    return obj


outputs = st.fixed_dictionaries({key: st.booleans() for key in HAPPY}).map(_as_json)
payloads = st.fixed_dictionaries({"ok": st.booleans()}).map(_as_json)
actions = st.sampled_from(
    ["complete"] * 6
    + ["fail"] * 2
    + ["timer"] * 2
    + ["grant"] * 2
    + ["deny", "signal", "redeliver", "progress", "cancel"]
)


def waiting_signals(d: Driver) -> list[str]:
    state = d.current
    assert state.plan is not None
    return [
        state.plan.steps[name].signal or ""
        for name in state.plan.order
        if any(t.is_signal_wait and t.status is TaskStatus.RUNNING for t in state.steps[name].tasks)
    ]


def check_determinism(d: Driver, item: Any) -> None:
    """Deciding again, live or on the recovered state, gives identical events."""
    before = d.state
    first = handle(before, item, registry=REGISTRY, now=d.now)
    again = handle(before, item, registry=REGISTRY, now=d.now)
    recovered = handle(fold(d.journal), item, registry=REGISTRY, now=d.now)
    assert first == again
    assert first.events == recovered.events


def act(d: Driver, action: str, data: st.DataObject) -> None:
    tasks = open_tasks(d.state)
    if action in ("complete", "fail", "progress") and tasks:
        task = data.draw(st.sampled_from(tasks))
        item = int(task.task_id.rsplit("/", 2)[-2])  # ids: <wf>/<step>/<run>/<item>/<attempt>
        if action == "complete":
            output = data.draw(outputs)
            check_determinism(d, d.completed(task, output))
            d.complete(task.step, output, item=item)
        elif action == "fail":
            kind = data.draw(st.sampled_from(["agent_error", "invalid_input", "timeout"]))
            d.fail(task.step, item=item, kind=kind, retryable=data.draw(st.booleans()))
        else:
            d.progress(task.step, item=item)
    elif action in ("grant", "deny") and (requests := lock_requests_to_publish(d.state)):
        request = data.draw(st.sampled_from(requests))
        if action == "grant":
            grant = d.granted(request)
            check_determinism(d, grant)
            d.send(grant)
        else:
            d.send(d.denied(request, "wait timeout"))
    elif action == "timer" and (timer := next_timer(d.state)) is not None:
        d.now = max(d.now, timer.due_at)
        check_determinism(d, timer)
        d.fire()
    elif action == "signal":
        name = data.draw(st.sampled_from(["go", "other"]))
        d.signal(name, data.draw(payloads))
    elif action == "cancel" and data.draw(st.integers(0, 3)) == 0:
        d.cancel("property test")
    elif action == "redeliver":
        earlier = data.draw(st.integers(0, len(d.inputs) - 1))
        assert d.redeliver(earlier) == []


def finish(d: Driver) -> None:
    """Let the world cooperate until the workflow ends."""
    for _ in range(300):
        if not d.current.running:
            return
        tasks = tasks_to_publish(d.state)
        if tasks:
            d.send(d.completed(tasks[0], HAPPY))
        elif requests := lock_requests_to_publish(d.state):
            d.send(d.granted(requests[0]))
        elif signals := waiting_signals(d):
            d.signal(signals[0], {"ok": True})
        else:
            d.fire()
    raise AssertionError(f"workflow did not end: {d.current}")


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=st.sampled_from(SPECS), steps=st.integers(0, 40), data=st.data())
def test_random_runs_keep_the_core_invariants(
    spec: WorkflowSpec, steps: int, data: st.DataObject
) -> None:
    d = Driver(REGISTRY)
    d.request(spec.name, input=INPUTS[spec.name])
    handed_out = [(d.state, repr(d.state))]
    for _ in range(steps):
        if not d.current.running:
            break
        d.tick(data.draw(st.integers(0, 5_000)))
        act(d, data.draw(actions), data)
        handed_out.append((d.state, repr(d.state)))
        pending = pending_timers(d.state)
        assert next_timer(d.state) == (pending[0] if pending else None)
    finish(d)
    assert [repr(state) for state, _ in handed_out] == [text for _, text in handed_out]
    assert not d.current.running
    for index in range(len(d.inputs)):
        assert d.redeliver(index) == []

    failures = [e for e in d.journal if isinstance(e, WorkflowFailed)]
    assert all(e.error_kind not in ("internal_error", "stuck") for e in failures), failures

    # Replay, as `agentlog verify` will: each input at the time its decisions record.
    decided_at = {e.envelope.causation_id: e.envelope.occurred_at for e in reversed(d.journal)}
    replay = Driver(REGISTRY)
    for item in d.inputs:
        cause = item.event_id if isinstance(item, TimerFired) else item.envelope.event_id
        replay.now = decided_at.get(cause, replay.now)
        replay.send(item)
    assert replay.journal == d.journal


@settings(max_examples=60, deadline=None, database=None)
@given(spec=st.sampled_from(SPECS), cut=st.integers(0, 200), data=st.data())
def test_a_journal_with_duplicated_events_folds_to_the_same_state(
    spec: WorkflowSpec, cut: int, data: st.DataObject
) -> None:
    d = Driver(REGISTRY)
    d.request(spec.name, input=INPUTS[spec.name])
    finish(d)
    journal = list(d.journal)
    position = cut % len(journal)
    duplicated = [*journal[: position + 1], journal[position], *journal[position + 1 :]]
    if data.draw(st.booleans()):
        duplicated.insert(position + 2, journal[max(position - 1, 0)])
    assert fold(duplicated) == fold(journal)
