"""Events flow from the topics into the read models; the rows equal an independent fold."""

from __future__ import annotations

import asyncpg
import pytest

from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.projections.tables import (
    AGENT_MINUTES,
    AGENTS,
    DEAD_LETTERS,
    LOCK_MINUTES,
    LOCK_REQUESTS,
    LOCKS,
    STEPS,
    WORKFLOWS,
)
from agentlog.settings import Settings
from tests.integration.projections.support import (
    expected_changes,
    journal_states,
    load_table,
    normalised,
    produce,
    read_topics,
    scenario,
)


@pytest.mark.timeout(120)
async def test_every_topic_is_projected(settings: Settings, schema: str) -> None:
    items = scenario(settings.topic_prefix, 30)
    await produce(settings, items, duplicates=0.05, poison_every=97)
    config = ProjectorConfig(schema=schema, batch_size=300)
    async with Projector(settings, config) as projector:
        await projector.wait_caught_up(60)
        # dead letters the projector wrote are projected too
        await projector.wait_caught_up(30)
        pool = projector.pool
        async with pool.acquire() as conn:
            await assert_matches_topics(conn, settings)


async def assert_matches_topics(conn: asyncpg.Connection, settings: Settings) -> None:
    """Every read model equals the one-pass fold of the topics; workflows equal the journal fold."""
    records = await read_topics(settings)
    expected = expected_changes(records)
    states = journal_states(records)

    workflows = {r.workflow_id: r for r in await load_table(conn, WORKFLOWS)}
    assert set(workflows) == set(states)
    for workflow_id, state in states.items():
        row = workflows[workflow_id]
        assert row.status == state.status.value
        assert (row.definition, row.version, row.priority) == (
            state.definition,
            state.version,
            state.priority,
        )
        assert normalised(WORKFLOWS, row)["input"] == state.input
        assert normalised(WORKFLOWS, row)["output"] == state.output
        assert row.error_kind == (state.error.error_kind if state.error else None)
        assert row.error_message == (state.error.message if state.error else None)
        assert row.failed_step == state.failed_step
        assert (row.started_at, row.ended_at) == (state.started_at, state.ended_at)
        assert row.journal_length == state.journal_length
    expected_workflows = {r.workflow_id: r for r in expected.new_workflows}
    assert {k: normalised(WORKFLOWS, v) for k, v in workflows.items()} == {
        k: normalised(WORKFLOWS, v) for k, v in expected_workflows.items()
    }

    for table, rows in (
        (STEPS, expected.steps),
        (LOCKS, expected.locks),
        (LOCK_REQUESTS, expected.lock_requests),
        (AGENTS, expected.agents),
        (DEAD_LETTERS, expected.dead_letters),
        (AGENT_MINUTES, expected.agent_minutes),
        (LOCK_MINUTES, expected.lock_minutes),
    ):
        key = table.key
        got = {
            tuple(getattr(r, k) for k in key): normalised(table, r)
            for r in await load_table(conn, table)
        }
        want = {tuple(getattr(r, k) for k in key): normalised(table, r) for r in rows}
        assert got == want, table.name

    # every current task in the journal fold has its row, with the same outcome
    steps = {r.task_id: r for r in await load_table(conn, STEPS)}
    for state in states.values():
        for step in state.steps.values():
            for task in step.tasks:
                row = steps[task.task_id]
                assert row.attempt == task.attempt
                assert row.status in _STATUS_OF[task.status.value], (task, row)
    counts = {
        (r["topic"], r["type"]): r["events"] for r in await conn.fetch("SELECT * FROM event_counts")
    }
    assert counts == expected.event_counts
    archived = await conn.fetchval("SELECT count(*) FROM events")
    assert archived == len({r.event_id for r in records})


_STATUS_OF = {
    "running": {"running", "waiting"},
    "retry_wait": {"failed", "timed_out"},
    "timed_out": {"timed_out"},
    "completed": {"completed"},
    "failed": {"failed"},
}
