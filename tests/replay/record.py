"""Record the committed replay fixtures: the demo workflows run through the pure core.

Each scenario drives one demo workflow through the orchestrator core in-process
(:class:`~agentlog.agents.orchestrator.history.HistoryRecorder`), answering
tasks with the deterministic demo agents, granting (or denying) locks as a lock
manager would and firing timers when the simulated clock reaches them. Event
ids, times and trace context are fixed, so a regeneration with unchanged code
writes the same bytes.

    python -m tests.replay.record              # rewrite tests/replay/histories + divergent
    python -m tests.replay.record --list       # the scenarios and what each covers
    python -m tests.replay.record --out /tmp/h --only pr-deploy

Regenerate only when a change of decisions is intended (``agentlog verify
tests/replay/histories`` fails and the new decisions are the right ones), and
say why in the commit: the committed files are what the old code decided.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from agentlog.agents.demo import ANSWERS
from agentlog.agents.orchestrator.history import History, HistoryRecorder
from agentlog.agents.orchestrator.history_file import write_history
from agentlog.schemas.events import (
    CancelRequested,
    Envelope,
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
    WorkflowRegistry,
    WorkflowState,
    lock_requests_to_publish,
    next_timer,
    tasks_to_publish,
)
from agentlog.workflow.demos import demo_registry

HERE = Path(__file__).resolve().parent
HISTORIES = HERE / "histories"
DIVERGENT = HERE / "divergent"
#: Namespace of the fixtures' input event ids (never change it: ids are recorded).
NAMESPACE = uuid.UUID("3d7c1a0e-52b4-4c55-8f0f-0c6b2f9e6a41")
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SOURCE = "tests.replay.record (in-process, demo agents)"

#: The divergent fixture: which input's decisions were edited, and how (test_replay checks it).
DIVERGENT_NAME = "pr-deploy-edited"
DIVERGENT_INDEX = 2
DIVERGENT_EVENT = 1
DIVERGENT_FIELD = "input"


@dataclass(frozen=True)
class Fail:
    """The agent fails the task."""

    error_kind: str = "agent_error"
    retryable: bool = True
    message: str = "failed on purpose"


class _Silent:
    """The agent never answers (the attempt's deadline will fire)."""


SILENT = _Silent()
Reply: TypeAlias = "JsonValue | Fail | _Silent"
Agent: TypeAlias = "Callable[[TaskRequested], Reply]"
#: A lock manager's answer to a request: True grants, a string denies with that reason.
LockPolicy: TypeAlias = "Callable[[LockRequested], bool | str]"


def demo_agent(task: TaskRequested) -> Reply:
    """The demo agents' answer (agentlog.agents.demo.ANSWERS)."""
    return ANSWERS[task.agent_kind](task.input)


def grant_all(_request: LockRequested) -> bool | str:
    return True


class World:
    """One workflow, the agents, a lock manager and a clock around the recorder."""

    def __init__(
        self,
        workflow_id: str,
        *,
        registry: WorkflowRegistry | None = None,
        idempotency_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.recorder = HistoryRecorder(
            registry or demo_registry(), workflow_id, idempotency_keys=idempotency_keys
        )
        self.now = T0
        self.handed_out: set[str] = set()
        self.decided_locks: set[str] = set()
        self._events = 0
        self._token = 40
        digest = hashlib.sha256(workflow_id.encode()).hexdigest()
        self.traceparent = f"00-{digest[:32]}-{digest[32:48]}-01"

    @property
    def state(self) -> WorkflowState:
        assert self.recorder.state is not None, "no decision yet"
        return self.recorder.state

    # -- inputs ----------------------------------------------------------------------

    def send(self, item: Input) -> tuple[JournalEvent, ...]:
        return self.recorder.feed(item, self.now)

    def envelope(self, type_name: str, source: str, *, after_ms: int = 250) -> Envelope:
        self.now += timedelta(milliseconds=after_ms)
        self._events += 1
        return new_envelope(
            type_name,
            self.workflow_id,
            source=source,
            event_id=str(uuid.uuid5(NAMESPACE, f"{self.workflow_id}/{self._events}")),
            traceparent=self.traceparent,
            occurred_at=self.now,
        )

    def request(
        self, definition: str, input: JsonValue, *, idempotency_key: str | None = None
    ) -> tuple[JournalEvent, ...]:
        return self.send(
            WorkflowRequested(
                envelope=self.envelope("WorkflowRequested", "client"),
                workflow_id=self.workflow_id,
                definition=definition,
                input=input,
                idempotency_key=idempotency_key,
                labels={"fixture": "replay"},
            )
        )

    def response(self, task: TaskRequested, reply: JsonValue | Fail) -> TaskCompleted | TaskFailed:
        envelope = self.envelope(
            "TaskFailed" if isinstance(reply, Fail) else "TaskCompleted",
            f"agent-{task.agent_kind}",
            after_ms=1_500,
        )
        common = {
            "task_id": task.task_id,
            "workflow_id": task.workflow_id,
            "step": task.step,
            "attempt": task.attempt,
            "agent_id": f"{task.agent_kind}-1",
        }
        if isinstance(reply, Fail):
            return TaskFailed(
                envelope=envelope,
                error_kind=reply.error_kind,
                message=reply.message,
                retryable=reply.retryable,
                **common,  # type: ignore[arg-type]
            )
        return TaskCompleted(envelope=envelope, output=reply, **common)  # type: ignore[arg-type]

    def progress(self, task: TaskRequested) -> tuple[JournalEvent, ...]:
        return self.send(
            TaskProgress(
                envelope=self.envelope("TaskProgress", f"agent-{task.agent_kind}"),
                task_id=task.task_id,
                workflow_id=task.workflow_id,
                step=task.step,
                attempt=task.attempt,
                fraction=0.5,
                message="half way",
                agent_id=f"{task.agent_kind}-1",
            )
        )

    def signal(self, name: str, payload: JsonValue) -> tuple[JournalEvent, ...]:
        return self.send(
            SignalSent(
                envelope=self.envelope("SignalSent", "client"),
                workflow_id=self.workflow_id,
                signal=name,
                payload=payload,
            )
        )

    def cancel(self, reason: str) -> tuple[JournalEvent, ...]:
        return self.send(
            CancelRequested(
                envelope=self.envelope("CancelRequested", "client"),
                workflow_id=self.workflow_id,
                reason=reason,
            )
        )

    def decide_lock(self, request: LockRequested, answer: bool | str) -> tuple[JournalEvent, ...]:
        self.decided_locks.add(request.request_id)
        common = {
            "resource": request.resource,
            "request_id": request.request_id,
            "requester": request.requester,
            "workflow_id": request.workflow_id,
        }
        if answer is True:
            self._token += 1
            envelope = self.envelope("LockGranted", "lock-manager")
            return self.send(
                LockGranted(
                    envelope=envelope,
                    fencing_token=self._token,
                    lease_expires_at=self.now + timedelta(milliseconds=600_000),
                    **common,  # type: ignore[arg-type]
                )
            )
        reason = answer if isinstance(answer, str) else "denied"
        envelope = self.envelope("LockDenied", "lock-manager")
        return self.send(LockDenied(envelope=envelope, reason=reason, **common))  # type: ignore[arg-type]

    def fire(self) -> tuple[JournalEvent, ...]:
        """Move the clock to the next timer (plus the runner's few ms) and feed it."""
        timer = next_timer(self.state)
        assert timer is not None, "no pending timer"
        self.now = max(self.now, timer.due_at) + timedelta(milliseconds=3)
        return self.recorder.feed(timer, self.now)

    # -- looking around ----------------------------------------------------------------

    def open_tasks(self) -> list[TaskRequested]:
        """Tasks the runner would publish now that no agent has taken yet."""
        return [t for t in tasks_to_publish(self.state) if t.task_id not in self.handed_out]

    def take(self, step: str) -> TaskRequested:
        """Hand the open task of ``step`` to an agent (who answers later, or never)."""
        task = next(t for t in self.open_tasks() if t.step == step)
        self.handed_out.add(task.task_id)
        return task

    def run(
        self,
        agent: Agent = demo_agent,
        *,
        locks: LockPolicy = grant_all,
        last_first: bool = False,
        limit: int = 200,
    ) -> None:
        """Answer tasks, decide locks and fire timers until the workflow ends."""
        for _ in range(limit):
            if not self.state.running:
                return
            tasks = self.open_tasks()
            requests = [
                r
                for r in lock_requests_to_publish(self.state)
                if r.request_id not in self.decided_locks
            ]
            if tasks:
                task = tasks[-1] if last_first else tasks[0]
                self.handed_out.add(task.task_id)
                reply = agent(task)
                if not isinstance(reply, _Silent):
                    self.send(self.response(task, reply))
            elif requests:
                self.decide_lock(requests[0], locks(requests[0]))
            elif next_timer(self.state) is not None:
                self.fire()
            else:
                raise AssertionError(f"{self.workflow_id} waits for nothing: {self.state}")
        raise AssertionError(f"{self.workflow_id} did not end in {limit} inputs")

    def history(self, note: str) -> History:
        return self.recorder.history(source=SOURCE, note=note)


# -- scenarios ---------------------------------------------------------------------------

PR_INPUT: JsonValue = {"repo": "acme/shop", "pr": 42, "environment": "staging"}


def pr_deploy() -> History:
    w = World("replay-pr-deploy")
    w.request("pr-deploy", PR_INPUT)
    w.run()
    return w.history("pr-deploy: review, tests, the lock on repo:acme/shop granted, deploy")


def pr_deploy_retries() -> History:
    def agent(task: TaskRequested) -> Reply:
        if task.step == "tests" and task.attempt == 1:
            return Fail("agent_error", retryable=True, message="test runner lost")
        return demo_agent(task)

    def locks(request: LockRequested) -> bool | str:
        first_attempt = request.request_id.endswith("/deploy/1/0/1/lock/0")
        return "wait timeout: held by another deploy" if first_attempt else True

    w = World("replay-pr-deploy-retries")
    w.request("pr-deploy", PR_INPUT)
    w.run(agent, locks=locks)
    return w.history(
        "pr-deploy: tests attempt 1 fails (retryable) and is retried after its backoff; "
        "the deploy lock is denied once (lock_denied, retried), then granted"
    )


def pr_deploy_review_times_out() -> History:
    w = World("replay-pr-deploy-review-times-out")
    w.request("pr-deploy", {"repo": "acme/shop", "pr": 7})
    first = w.take("review")
    w.fire()  # attempt 1 passes its deadline: StepTimedOut, retry scheduled
    w.send(w.response(first, demo_agent(first)))  # its late answer decides nothing
    w.run(lambda _task: SILENT)  # attempts 2 and 3 time out as well: the workflow fails
    return w.history(
        "pr-deploy: every review attempt passes its 10 min deadline (StepTimedOut, retried "
        "twice); a late answer to attempt 1 is ignored; the step fails, then the workflow"
    )


def parallel_docs() -> History:
    def agent(task: TaskRequested) -> Reply:
        if task.task_id.endswith("/write/1/2/1"):
            return SILENT  # item 2's first writer hangs: its deadline fires
        return demo_agent(task)

    w = World("replay-parallel-docs")
    w.request("parallel-docs", _example("parallel-docs"))
    first = w.open_tasks()[0]
    w.progress(first)  # progress decides nothing
    w.run(agent)
    return w.history(
        "parallel-docs: fan-out of 4 writers; item 2 times out (StepTimedOut) and its retry "
        "answers; TaskProgress decides nothing; join, then aggregate"
    )


def self_healing() -> History:
    w = World("replay-self-healing")
    w.request("self-healing", _example("self-healing"))
    w.run()
    return w.history("self-healing: detect, then diagnose/fix/verify loops 3 rounds until healthy")


def triage_chain() -> History:
    w = World("replay-triage-chain")
    w.request("triage-chain", _example("triage-chain"))
    task = w.take("triage")
    answer = w.response(task, demo_agent(task))
    w.send(answer)
    w.send(answer)  # redelivered: decides nothing
    w.run()
    return w.history("triage-chain: 3 agents in a chain; a redelivered answer is ignored")


def triage_chain_cancelled() -> History:
    w = World("replay-triage-chain-cancelled")
    w.request("triage-chain", _example("triage-chain"))
    task = w.take("triage")
    w.send(w.response(task, demo_agent(task)))
    data = w.take("data")
    w.signal("escalate", {"by": "support-lead"})  # no step waits for it: recorded, dropped
    w.cancel("customer withdrew the ticket")
    w.send(w.response(data, demo_agent(data)))  # after the end: decides nothing
    return w.history(
        "triage-chain: a signal no step waits for, then CancelRequested mid-chain; "
        "a late answer is ignored"
    )


def supervisor() -> History:
    w = World("replay-supervisor")
    w.request("supervisor", _example("supervisor"))
    w.run(last_first=True)  # the specialists answer in reverse order
    return w.history("supervisor: plan, fan-out to 4 specialists (answers out of order), aggregate")


def pr_deploy_duplicate_key() -> History:
    w = World(
        "replay-pr-deploy-duplicate-key",
        idempotency_keys={"deploy-acme-shop-42": "replay-pr-deploy"},
    )
    w.request("pr-deploy", PR_INPUT, idempotency_key="deploy-acme-shop-42")
    w.cancel("nothing to cancel")  # the workflow was rejected: decides nothing
    return w.history(
        "pr-deploy: the request reuses an idempotency key another workflow of the "
        "partition started with: WorkflowRejected (duplicate)"
    )


def pr_deploy_edited() -> History:
    """pr-deploy, with the deploy StepScheduled edited as if an older spec chose production."""
    history = pr_deploy()
    entries = list(history.entries)
    entry = entries[DIVERGENT_INDEX]
    event = entry.decisions[DIVERGENT_EVENT]
    assert isinstance(event, StepScheduled), event
    assert event.step == "deploy", event
    assert isinstance(event.input, dict)
    edited = replace(event, input={**event.input, "environment": "production"})
    decisions = list(entry.decisions)
    decisions[DIVERGENT_EVENT] = edited
    entries[DIVERGENT_INDEX] = replace(entry, decisions=tuple(decisions))
    return replace(
        history,
        workflow_id=history.workflow_id,
        entries=tuple(entries),
        note=(
            f"DELIBERATELY DIVERGENT: pr-deploy with decision {DIVERGENT_EVENT} of input "
            f"{DIVERGENT_INDEX} (StepScheduled deploy) edited to environment=production; "
            "agentlog verify must report it"
        ),
    )


def _example(name: str) -> JsonValue:
    spec = demo_registry().find(name)
    assert spec is not None
    return spec.example_input


#: name -> (directory, recorder). Names are file stems.
SCENARIOS: dict[str, tuple[Path, Callable[[], History]]] = {
    "pr-deploy": (HISTORIES, pr_deploy),
    "pr-deploy-retries": (HISTORIES, pr_deploy_retries),
    "pr-deploy-review-times-out": (HISTORIES, pr_deploy_review_times_out),
    "pr-deploy-duplicate-key": (HISTORIES, pr_deploy_duplicate_key),
    "parallel-docs": (HISTORIES, parallel_docs),
    "self-healing": (HISTORIES, self_healing),
    "triage-chain": (HISTORIES, triage_chain),
    "triage-chain-cancelled": (HISTORIES, triage_chain_cancelled),
    "supervisor": (HISTORIES, supervisor),
    DIVERGENT_NAME: (DIVERGENT, pr_deploy_edited),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.replay.record",
        description=(
            "Record the replay fixtures: each demo scenario run through the orchestrator "
            "core in-process, written as a history file (Avro object container) under "
            "tests/replay/histories/, and the deliberately divergent one under "
            "tests/replay/divergent/. Verify them with `agentlog verify`."
        ),
        epilog=(
            "examples:\n"
            "  python -m tests.replay.record\n"
            "  python -m tests.replay.record --list\n"
            "  python -m tests.replay.record --only pr-deploy --only supervisor --out /tmp/h\n"
            "  agentlog verify tests/replay/histories"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write every file to DIR instead of tests/replay/{histories,divergent}",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="record only NAME (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; see --list")
    if args.list:
        for name, (directory, record) in SCENARIOS.items():
            print(f"{name:<28} {directory.name}/  {record().note}")
        return 0
    for name, (directory, record) in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        target = (args.out or directory) / f"{name}.avro"
        target.parent.mkdir(parents=True, exist_ok=True)
        history = record()
        write_history(target, history)
        shown = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
        print(f"{shown}: {len(history.entries)} inputs, {len(history.journal)} decisions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
