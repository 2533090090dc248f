"""Decisions on workflow steps' lock requests carry the workflow id and are copied to responses."""

from __future__ import annotations

from dataclasses import replace

from agentlog.agents.locks.relay import for_workflows, held_grants, track_grant
from agentlog.schemas.events import LockDenied, LockGranted, LockQueued
from tests.unit.locks.locks_driver import RESOURCE, Locks, fold_log, release, request


def test_grants_queue_decisions_and_denials_carry_the_requests_workflow_id() -> None:
    locks = Locks()
    [granted] = locks.send(replace(request("a"), workflow_id="wf-a"))
    [queued] = locks.send(replace(request("b", wait_ms=100), workflow_id="wf-b"))
    [plain] = locks.send(request("c", wait_ms=0))  # not a workflow step: busy at once
    assert isinstance(granted, LockGranted)
    assert granted.workflow_id == "wf-a"
    assert isinstance(queued, LockQueued)
    assert isinstance(plain, LockDenied)
    assert plain.workflow_id is None
    # the waiter's workflow id survives the queue: on hand-over and on its wait timeout
    handed = locks.send(release("a"))
    assert [(type(e).__name__, getattr(e, "workflow_id", "-")) for e in handed] == [
        ("LockReleased", "-"),
        ("LockGranted", "wf-b"),
    ]
    locks.send(replace(request("d", wait_ms=100), workflow_id="wf-d"))
    denied = locks.tick(200)
    assert [(type(e).__name__, getattr(e, "workflow_id", None)) for e in denied] == [
        ("LockDenied", "wf-d"),
    ]
    # copied to responses: only decisions that answer a workflow step
    copies = for_workflows([[granted, queued, plain], handed, denied])
    assert [(type(e).__name__, e.request_id) for e in copies] == [
        ("LockGranted", "a"),
        ("LockGranted", "b"),
        ("LockDenied", "d"),
    ]


def test_recovery_copies_the_grant_of_each_current_workflow_holder_again() -> None:
    locks = Locks()
    locks.send(replace(request("a"), workflow_id="wf-a"))
    locks.send(replace(request("b"), workflow_id="wf-b"))
    locks.send(release("a"))  # b holds now
    locks.send(replace(request("x", resource="db:other"), resource="db:other"))  # no workflow
    last: dict[str, LockGranted] = {}
    for event in locks.log:
        track_grant(last, event)
    again = held_grants(fold_log(locks.log), last)
    assert [(g.resource, g.request_id, g.fencing_token) for g in again] == [(RESOURCE, "b", 2)]
