"""The pure folds: workflow rows equal the journal fold; batching and topic order never matter."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentlog.agents.locks.commands import is_decision
from agentlog.projections.folds.agents import agent_after
from agentlog.projections.folds.batch import Changes, Rows, fold_batch, keys_of
from agentlog.projections.folds.locks import LockRow
from agentlog.projections.folds.metrics import (
    BUCKETS,
    AgentMinute,
    LockMinute,
    add,
    bucket_of,
    one_hot,
    percentile,
)
from agentlog.projections.folds.steps import parse_task_id
from agentlog.projections.folds.workflows import MUTABLE_COLUMNS, WorkflowRow, evolve_workflow
from agentlog.projections.records import Record, json_text, to_json
from agentlog.schemas.events import (
    AgentHeartbeat,
    AgentRegistered,
    LockReleased,
    LockReleaseRequested,
    LockRenewed,
    LockRenewRequested,
    new_envelope,
)
from agentlog.workflow import WorkflowState, fold
from tests.unit.projections.scenario import as_records, scenario

T0 = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)


def assert_row_matches(row: WorkflowRow | None, state: WorkflowState | None) -> None:
    """Every column the row shares with the state has the state's value."""
    if state is None:
        assert row is None
        return
    assert row is not None
    assert row.workflow_id == state.workflow_id
    assert row.status == state.status.value
    assert (row.definition, row.version, row.priority) == (
        state.definition,
        state.version,
        state.priority,
    )
    assert row.input == json_text(state.input)
    assert row.output == json_text(state.output)
    assert row.idempotency_key == state.idempotency_key
    assert row.request_event_id == state.request_event_id
    assert row.correlation_id == state.correlation_id
    assert row.labels == to_json(dict(state.labels))
    assert row.error_kind == (state.error.error_kind if state.error else None)
    assert row.error_message == (state.error.message if state.error else None)
    assert row.failed_step == state.failed_step
    assert (row.started_at, row.ended_at) == (state.started_at, state.ended_at)
    assert row.journal_length == state.journal_length


def journals(records: Sequence[Record]) -> dict[str, list[Record]]:
    found: dict[str, list[Record]] = {}
    for r in records:
        if r.topic.endswith(".journal"):
            found.setdefault(r.event.workflow_id, []).append(r)  # type: ignore[union-attr]
    return found


def test_workflow_rows_equal_the_journal_fold_after_every_event() -> None:
    records = as_records(scenario("u", 21))
    by_workflow = journals(records)
    statuses = set()
    for events in by_workflow.values():
        row: WorkflowRow | None = None
        for n, record in enumerate(events, start=1):
            row = evolve_workflow(row, record.event, record.partition, record.offset)
            assert_row_matches(row, fold(r.event for r in events[:n]))
        assert row is not None
        statuses.add(row.status)
    assert statuses == {"succeeded", "cancelled", "rejected"}


def test_events_of_other_workflows_and_topics_leave_a_row_alone() -> None:
    records = as_records(scenario("u", 3))
    by_workflow = journals(records)
    first, second = list(by_workflow.values())[:2]
    row = evolve_workflow(None, first[0].event, 0, 0)
    assert evolve_workflow(row, second[1].event, 0, 1) is row
    other = next(r for r in records if not r.topic.endswith(".journal"))
    assert evolve_workflow(row, other.event, 0, 2) is row
    assert evolve_workflow(None, first[1].event, 0, 3) is None  # no row before the start


class MemoryStore:
    """What :mod:`agentlog.projections.store` does, in memory: dedupe, load, fold, write."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.rows = Rows()
        self.minutes: dict[tuple[str, datetime], Any] = {}
        self.dead: dict[str, Any] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def apply(self, batch: Sequence[Record]) -> None:
        new = []
        for r in batch:
            if r.event_id not in self.seen:
                self.seen.add(r.event_id)
                new.append(r)
        keys = keys_of(new)
        loaded = Rows(
            # the store loads workflows without their immutable JSON columns
            workflows={
                k: replace(self.rows.workflows[k], input=None, spec=None, labels="{}")
                for k in keys.workflows
                if k in self.rows.workflows
            },
            steps={k: self.rows.steps[k] for k in keys.steps if k in self.rows.steps},
            locks={k: self.rows.locks[k] for k in keys.locks if k in self.rows.locks},
            lock_requests={
                k: self.rows.lock_requests[k]
                for k in keys.lock_requests
                if k in self.rows.lock_requests
            },
            agents={k: self.rows.agents[k] for k in keys.agents if k in self.rows.agents},
        )
        self.write(fold_batch(new, loaded))

    def write(self, changes: Changes) -> None:
        for row in changes.new_workflows:
            self.rows.workflows.setdefault(row.workflow_id, row)
        for row in changes.updated_workflows:
            old = self.rows.workflows[row.workflow_id]
            self.rows.workflows[row.workflow_id] = replace(
                old, **{c: getattr(row, c) for c in MUTABLE_COLUMNS}
            )
        self.rows.steps.update({r.task_id: r for r in changes.steps})
        self.rows.locks.update({r.resource: r for r in changes.locks})
        self.rows.lock_requests.update({r.request_id: r for r in changes.lock_requests})
        self.rows.agents.update({r.agent_id: r for r in changes.agents})
        self.dead.update({r.event_id: r for r in changes.dead_letters})
        for m in [*changes.agent_minutes, *changes.lock_minutes]:
            key = (m.agent_kind if isinstance(m, AgentMinute) else f"lock:{m.resource}", m.minute)
            self.minutes[key] = add(self.minutes[key], m) if key in self.minutes else m
        for key, n in changes.event_counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.rows.workflows,
            self.rows.steps,
            self.rows.locks,
            self.rows.lock_requests,
            self.rows.agents,
            self.minutes,
            self.dead,
            self.counts,
        )


def project(records: Sequence[Record], batch: int) -> tuple[Any, ...]:
    store = MemoryStore()
    for start in range(0, len(records), batch):
        store.apply(records[start : start + batch])
    return store.snapshot()


def interleave(records: Sequence[Record], seed: int) -> list[Record]:
    """Another order a consumer may deliver: per-partition order kept, partitions interleaved."""
    streams: dict[tuple[str, int], list[Record]] = {}
    for r in records:
        streams.setdefault((r.topic, r.partition), []).append(r)
    rng = random.Random(seed)
    queues = [list(reversed(s)) for s in streams.values()]
    out = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop())
        if not q:
            queues.remove(q)
    return out


@pytest.mark.parametrize("batch", [1, 7, 64, 100_000])
def test_batch_size_and_redelivery_do_not_change_the_result(batch: int) -> None:
    records = as_records(scenario("u", 14))
    one_pass = project(records, len(records))
    assert one_pass == project(records, batch)
    redelivered = records[:50] + records[:120] + records + records[-30:]
    assert one_pass == project(redelivered, batch)


@pytest.mark.parametrize("seed", range(5))
def test_the_interleaving_of_partitions_and_topics_does_not_matter(seed: int) -> None:
    records = as_records(scenario("u", 14))
    assert project(records, 50) == project(interleave(records, seed), 50)


def test_steps_record_attempts_retries_and_agent_reports() -> None:
    store = MemoryStore()
    store.apply(as_records(scenario("u", 14)))
    steps = store.rows.steps
    retried = [s for s in steps.values() if s.retry_at is not None]
    assert retried
    for failed in retried:
        assert failed.status == "failed"
        assert failed.error_kind == "agent_error"
        assert failed.next_attempt == failed.attempt + 1
        again = steps[failed.task_id.rsplit("/", 1)[0] + f"/{failed.next_attempt}"]
        assert again.status == "completed"
    done = [s for s in steps.values() if s.status == "completed" and s.kind == "task"]
    assert all(s.agent_outcome == "completed" and s.agent_id for s in done)
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in done)
    assert any(s.progress == 0.5 for s in steps.values())
    kinds = {s.kind for s in steps.values()}
    assert {"task", "join"} <= kinds


def test_rollups_count_completions_failures_and_cache() -> None:
    store = MemoryStore()
    store.apply(as_records(scenario("u", 14)))
    agents = [m for m in store.minutes.values() if isinstance(m, AgentMinute)]
    completed = sum(m.completed for m in agents)
    assert completed == sum(
        1
        for s in store.rows.steps.values()
        if s.status == "completed" and s.kind == "task" and s.agent_kind
    )
    assert sum(m.failed for m in agents) == sum(m.retried for m in agents) >= 1
    assert sum(sum(m.latency_buckets) for m in agents) == completed
    assert sum(m.cache_hits for m in agents) == 7 + 8 + 9
    assert sum(m.cache_degraded_windows for m in agents) == 1
    locks = [m for m in store.minutes.values() if isinstance(m, LockMinute)]
    assert sum(m.granted for m in locks) == 6
    assert sum(m.queued for m in locks) == 3
    assert sum(m.denied for m in locks) == 3
    assert sum(m.expired for m in locks) == 1


def test_locks_follow_holder_queue_and_tokens() -> None:
    store = MemoryStore()
    store.apply(as_records(scenario("u", 1)))
    locks = store.rows.locks
    held = [lock for lock in locks.values() if lock.status == "held"]
    freed = [lock for lock in locks.values() if lock.status == "free"]
    assert len(held) == 2
    assert len(freed) == 1
    # one release each: the holder's release command is not folded, the decision is
    assert [lock.releases for lock in locks.values()] == [1, 1, 1]
    for lock in held:
        assert lock.holder == "wf-b/deploy"
        assert lock.fencing_token == 2
        assert lock.queue == ()
        assert (lock.requests, lock.grants, lock.queued, lock.denials) == (3, 2, 1, 1)
    requests = store.rows.lock_requests
    statuses = sorted(r.status for r in requests.values())
    assert statuses.count("denied") == 3
    assert statuses.count("released") == 3
    waited = [r for r in requests.values() if r.request_id.endswith("req-b")]
    assert all(r.wait_ms is not None and r.wait_ms > 800 for r in waited)


def test_release_and_renew_commands_are_archived_and_counted_but_never_folded() -> None:
    """Given a resource's log, when the holders' commands (either encoding) are dropped,
    then every lock row and rollup is the same: only the manager's decisions count."""
    records = as_records(scenario("u", 1))
    locks = [r for r in records if r.topic.endswith(".locks")]
    commands = [
        r
        for r in locks
        if isinstance(r.event, LockReleaseRequested | LockRenewRequested)
        or (isinstance(r.event, LockReleased | LockRenewed) and not is_decision(r.event))
    ]
    kinds = {(type(r.event).__name__, r.event.envelope.source) for r in commands}
    assert kinds == {
        ("LockRenewRequested", "lock-client"),
        ("LockReleaseRequested", "lock-client"),
        ("LockReleased", "lock-client"),  # an older client's interim release
    }
    assert keys_of(commands) == keys_of([])
    alone = fold_batch(commands, Rows())
    assert replace(alone, event_counts={}) == Changes()
    assert sum(alone.event_counts.values()) == len(commands)
    without = fold_batch([r for r in records if r not in commands], Rows())
    full = fold_batch(records, Rows())
    assert replace(full, event_counts=without.event_counts) == without


def test_a_queued_request_shows_in_the_queue_until_granted() -> None:
    records = as_records(scenario("u", 0))
    locks = [r for r in records if r.topic.endswith(".locks")]
    store = MemoryStore()
    store.apply(locks[:4])  # requested, granted, requested, queued
    (lock,) = [v for v in store.rows.locks.values() if isinstance(v, LockRow)][:1]
    assert lock.status == "held"
    assert [w.requester for w in lock.queue] == ["wf-b/deploy"]


def test_agents_keep_last_seen_and_in_flight() -> None:
    def env(name: str, s: int) -> Any:
        return new_envelope(name, "a-1", source="t", occurred_at=T0 + timedelta(seconds=s))

    row = agent_after(
        None,
        AgentRegistered(
            envelope=env("AgentRegistered", 0),
            agent_id="a-1",
            agent_kind="writer",
            host="h",
            pid=1,
            concurrency=8,
            version="1",
        ),
    )
    row = agent_after(
        row,
        AgentHeartbeat(
            envelope=env("AgentHeartbeat", 5),
            agent_id="a-1",
            agent_kind="writer",
            in_flight=3,
            capacity=8,
        ),
    )
    assert row is not None
    assert (row.in_flight, row.capacity, row.heartbeats) == (3, 8, 1)
    assert row.last_seen_at == T0 + timedelta(seconds=5)
    assert row.deregistered_at is None


def test_percentiles_interpolate_inside_buckets() -> None:
    assert percentile((0,) * BUCKETS, 0.5) is None
    one = one_hot(7.0)
    assert bucket_of(7.0) == 1
    assert bucket_of(5.0) == 0
    assert 5.0 <= (percentile(one, 0.5) or 0) <= 10.0
    many = [0] * BUCKETS
    many[0], many[5] = 90, 10  # 90 under 5 ms, 10 in 100..250 ms
    assert (percentile(many, 0.5) or 0) <= 5.0
    assert 100.0 <= (percentile(many, 0.95) or 0) <= 250.0
    assert percentile(one_hot(10**9), 0.99) == 300_000.0


@pytest.mark.parametrize(
    ("task_id", "parsed"),
    [
        ("wf/a/b/step/2/3/1", (2, 3, "task")),
        ("wf/a/b/step/1/skip", (1, None, "skip")),
        ("wf/a/b/step/4/join", (4, None, "join")),
        ("something-else", (None, None, "task")),
    ],
)
def test_task_ids_give_run_item_and_kind(task_id: str, parsed: tuple[Any, ...]) -> None:
    assert parse_task_id("wf/a/b", "step", task_id) == parsed


def test_json_text_handles_bytes_nul_and_big_integers() -> None:
    assert to_json({"b": b"\x00\xff"}) == '{"b":"00ff"}'
    assert to_json("a\x00b") == '"a\\ufffdb"'
    assert to_json(2**70) == str(2**70)
    assert json_text(None) is None


@pytest.mark.parametrize("minimal", [False, True])
def test_every_event_round_trips_through_its_archive_json(minimal: bool) -> None:
    import json

    from agentlog.projections.payload import event_from_dict
    from agentlog.projections.records import event_json
    from tests.support.samples import all_sample_events

    for event in all_sample_events(minimal=minimal):
        text = event_json(event)
        assert event_from_dict(json.loads(text)) == event, type(event).__name__


def test_big_integers_and_nul_survive_the_archive_json() -> None:
    import json

    from agentlog.projections.payload import event_from_dict
    from agentlog.projections.records import event_json
    from agentlog.schemas.events import SignalSent

    event = SignalSent(
        envelope=new_envelope("SignalSent", "wf", source="t", occurred_at=T0),
        workflow_id="wf",
        signal="s",
        payload={"big": 2**80, "nul": "a\x00b", "f": 0.1},
    )
    assert event_from_dict(json.loads(event_json(event))) == event


def test_archive_columns_equal_archive_rows() -> None:
    from agentlog.projections.folds.archive import archive_columns, archive_row
    from agentlog.projections.tables import EVENTS

    records = as_records(scenario("u", 3))
    rows = [archive_row(r) for r in records]
    assert archive_columns(records) == [[getattr(r, c) for r in rows] for c in EVENTS.columns]


def test_archive_tuples_are_the_archive_columns_row_by_row() -> None:
    from agentlog.projections.folds.archive import archive_columns, archive_tuples

    records = as_records(scenario("u", 3))
    assert archive_tuples(records) == list(zip(*archive_columns(records), strict=True))


@pytest.mark.parametrize("step", [1, 13, 500])
def test_folding_a_batch_in_pieces_equals_folding_it_at_once(step: int) -> None:
    from agentlog.projections.folds.batch import BatchFold

    records = as_records(scenario("u", 6))
    whole = fold_batch(records, Rows())
    fold = BatchFold(Rows())
    for start in range(0, len(records), step):
        fold.apply(records[start : start + step])
    assert fold.changes() == whole


@pytest.mark.parametrize("minimal", [False, True])
def test_the_archive_json_is_orjsons_text_of_the_event(minimal: bool) -> None:
    """event_json builds dicts for speed; the text stays what orjson writes for the dataclass."""
    import orjson

    from agentlog.projections.records import _default, event_json
    from tests.support.samples import all_sample_events

    for event in all_sample_events(minimal=minimal):
        expected = orjson.dumps(event, default=_default).decode()
        assert event_json(event) == expected, type(event).__name__
