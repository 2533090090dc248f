"""Locks declared on steps: given events / when input / then events, and what the runner sends."""

from __future__ import annotations

from datetime import timedelta

from agentlog.schemas.events import (
    LockAcquired,
    LockAwaited,
    LockReleaseRequested,
    StepFailed,
    WorkflowFailed,
)
from agentlog.workflow import (
    LOCK_DECISION_GRACE_MS,
    RetryPolicy,
    TaskStatus,
    WorkflowRegistry,
    WorkflowSpec,
    WorkflowStatus,
    dispatchable_after,
    lock,
    lock_requests_to_publish,
    next_timer,
    releases_between,
    releases_to_publish,
    requests_after,
    tasks_to_publish,
    workflow,
)

from .harness import T0, Driver, summary

ONE_LOCK = (
    workflow("deploy", required_input=("repo",))
    .step(
        "ship",
        agent="deployer",
        input={"repo": "${input.repo}"},
        retry=RetryPolicy(max_attempts=2, initial_backoff_ms=1_000, jitter=0.0),
        locks=[lock("repo:${input.repo}", ttl_ms=20_000, wait_ms=5_000)],
    )
    .build()
)
# declared out of order: taken in resource order, so two workflows never deadlock
TWO_LOCKS = (
    workflow("migrate")
    .step(
        "move",
        agent="mover",
        locks=[lock("db:${input.to}"), lock("db:${input.from}")],
    )
    .build()
)


def driver(spec: WorkflowSpec = ONE_LOCK, input: object = None) -> Driver:
    d = Driver(WorkflowRegistry([spec]))
    d.request(spec.name, input=input if input is not None else {"repo": "acme/shop"})
    return d


def test_a_step_with_a_lock_waits_for_it_before_its_task_is_published() -> None:
    d = driver()
    assert summary(d.journal) == ["WorkflowStarted", "StepScheduled ship", "LockAwaited ship"]
    awaited = d.journal[-1]
    assert isinstance(awaited, LockAwaited)
    assert (awaited.resource, awaited.request_id, awaited.task_id) == (
        "repo:acme/shop",
        "wf-1/ship/1/0/1/lock/0",
        "wf-1/ship/1/0/1",
    )
    assert (awaited.ttl_ms, awaited.wait_timeout_ms) == (20_000, 5_000)
    assert tasks_to_publish(d.state) == ()
    # the runner sends the request, derived from the LockAwaited
    (request,) = requests_after(d.state, d.journal)
    assert (request.resource, request.request_id, request.workflow_id) == (
        "repo:acme/shop",
        "wf-1/ship/1/0/1/lock/0",
        "wf-1",
    )
    assert (request.requester, request.ttl_ms, request.wait_timeout_ms) == (
        "wf-1/ship",
        20_000,
        5_000,
    )
    assert request.envelope.key == "repo:acme/shop"
    assert lock_requests_to_publish(d.state) == [request]  # the same event on recovery


def test_the_grant_is_recorded_and_the_task_carries_its_fencing_token() -> None:
    d = driver()
    events = d.grant("ship", token=7)
    assert summary(events) == ["LockAcquired ship"]
    acquired = events[0]
    assert isinstance(acquired, LockAcquired)
    assert (acquired.fencing_token, acquired.lease_expires_at) == (7, T0 + timedelta(minutes=1))
    assert [t.task_id for t in dispatchable_after(d.state, events)] == ["wf-1/ship/1/0/1"]
    (task,) = tasks_to_publish(d.state)
    assert task.fencing_tokens == {"repo:acme/shop": 7}
    assert requests_after(d.state, events) == []


def test_completing_the_step_releases_its_lock_with_the_token() -> None:
    d = driver()
    d.grant("ship", token=3)
    before = d.state
    d.complete("ship", {"ok": True})
    assert d.current.status is WorkflowStatus.SUCCEEDED
    (release,) = releases_between(before, d.state)
    assert isinstance(release, LockReleaseRequested)
    assert (release.resource, release.request_id, release.fencing_token) == (
        "repo:acme/shop",
        "wf-1/ship/1/0/1/lock/0",
        3,
    )
    assert release.envelope.source == "orchestrator"  # a command, not a lock-manager decision
    # a recovery soon after sends the very same release again; the lock manager ignores it
    assert releases_to_publish(d.state, ended_since=T0) == [release]
    assert releases_to_publish(d.state, ended_since=T0 + timedelta(hours=1)) == []


def test_two_locks_are_taken_one_at_a_time_in_resource_order() -> None:
    d = driver(TWO_LOCKS, {"from": "orders", "to": "archive"})
    assert summary(d.journal[-2:]) == ["LockAwaited move", "LockAwaited move"]
    assert [e.resource for e in d.journal[-2:] if isinstance(e, LockAwaited)] == [
        "db:archive",
        "db:orders",
    ]
    (first,) = requests_after(d.state, d.journal)
    assert first.resource == "db:archive"
    events = d.grant("move", token=1)
    assert tasks_to_publish(d.state) == ()
    (second,) = requests_after(d.state, events)
    assert second.resource == "db:orders"
    events = d.grant("move", token=9)
    (task,) = tasks_to_publish(d.state)
    assert task.fencing_tokens == {"db:archive": 1, "db:orders": 9}


def test_a_denied_lock_fails_the_attempt_and_retries_with_a_new_request() -> None:
    d = driver()
    before = d.state
    events = d.deny("ship", reason="wait timeout: still queued")
    assert summary(events) == ["StepFailed ship", "StepRetryScheduled ship"]
    failed = events[0]
    assert isinstance(failed, StepFailed)
    assert failed.error_kind == "lock_denied"
    assert "repo:acme/shop" in failed.message
    # the denied request is given back too (a no-op for the lock manager)
    assert [r.request_id for r in releases_between(before, d.state)] == ["wf-1/ship/1/0/1/lock/0"]
    d.fire()
    assert summary(d.journal[-2:]) == ["StepScheduled ship", "LockAwaited ship"]
    (retry,) = lock_requests_to_publish(d.state)
    assert retry.request_id == "wf-1/ship/1/0/2/lock/0"


def test_a_second_denial_fails_the_workflow_with_lock_denied() -> None:
    d = driver()
    d.deny("ship")
    d.fire()
    d.deny("ship")
    assert d.current.status is WorkflowStatus.FAILED
    assert d.current.error is not None
    assert d.current.error.error_kind == "lock_denied"


def test_no_decision_within_wait_plus_grace_fails_the_attempt_with_lock_timeout() -> None:
    d = driver()
    timer = next_timer(d.state)
    assert timer is not None
    assert timer.timer_id == "lock:wf-1/ship/1/0/1/lock/0"
    assert timer.due_at == T0 + timedelta(milliseconds=5_000 + LOCK_DECISION_GRACE_MS)
    events = d.fire()
    assert summary(events) == ["StepFailed ship", "StepRetryScheduled ship"]
    assert isinstance(events[0], StepFailed)
    assert events[0].error_kind == "lock_timeout"


def test_cancelling_while_waiting_withdraws_the_request_and_publishes_no_task() -> None:
    d = driver()
    before = d.state
    d.cancel("operator")
    assert d.current.status is WorkflowStatus.CANCELLED
    (release,) = releases_between(before, d.state)
    assert (release.request_id, release.fencing_token) == ("wf-1/ship/1/0/1/lock/0", 0)
    assert tasks_to_publish(d.state) == ()


def test_duplicate_and_late_grants_change_nothing() -> None:
    d = driver()
    request = d.lock_request("ship")
    grant = d.granted(request, token=4)
    assert summary(d.send(grant)) == ["LockAcquired ship"]
    assert d.send(grant) == []  # redelivered
    assert d.send(d.granted(request, token=5)) == []  # another grant of a request it holds
    d.complete("ship", None)
    assert d.send(d.granted(request, token=6)) == []  # after the attempt ended


def test_a_step_timeout_while_waiting_for_the_lock_releases_the_request() -> None:
    spec = (
        workflow("slow")
        .step(
            "ship",
            agent="deployer",
            timeout_ms=1_000,
            retry=RetryPolicy(max_attempts=1),
            locks=[lock("repo:x", wait_ms=60_000)],
        )
        .build()
    )
    d = driver(spec, {})
    before = d.state
    events = d.fire()
    assert summary(events)[0] == "StepTimedOut ship"
    assert d.current.status is WorkflowStatus.FAILED
    assert [r.request_id for r in releases_between(before, d.state)] == [
        "wf-1/slow/1/0/1/lock/0".replace("slow", "ship")
    ]


def test_a_lock_template_that_renders_empty_fails_the_workflow_with_a_clear_reason() -> None:
    spec = workflow("named").step("use", agent="user", locks=[lock("${input.name}")]).build()
    d = driver(spec, {"name": " "})
    (failed,) = [e for e in d.journal if isinstance(e, WorkflowFailed)]
    assert failed.error_kind == "expression_error"
    assert "rendered to an empty string" in failed.message
    assert "'use'" in failed.message


def test_each_fan_out_item_takes_its_own_lock() -> None:
    spec = (
        workflow("fan")
        .step(
            "build",
            agent="builder",
            for_each="input.repos",
            input={"repo": "${item}"},
            locks=[lock("repo:${item}")],
        )
        .build()
    )
    d = driver(spec, {"repos": ["a", "b"]})
    requests = lock_requests_to_publish(d.state)
    assert [r.resource for r in requests] == ["repo:a", "repo:b"]
    d.grant("build", item=1, token=1)
    assert [t.input for t in tasks_to_publish(d.state)] == [{"repo": "b"}]
    assert d.task("build", 0).status is TaskStatus.RUNNING
    assert d.task("build", 0).awaiting_lock is not None


def test_the_demo_pr_deploy_holds_the_repo_lock_around_deploy() -> None:
    from agentlog.workflow.demos import PR_DEPLOY, demo_registry

    d = Driver(demo_registry())
    d.request("pr-deploy", input=PR_DEPLOY.example_input)
    d.complete("review", {"approved": True})
    d.complete("tests", {"passed": True})
    assert summary(d.journal[-2:]) == ["StepScheduled deploy", "LockAwaited deploy"]
    (request,) = lock_requests_to_publish(d.state)
    assert request.resource == "repo:acme/shop"
