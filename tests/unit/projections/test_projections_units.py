"""Small pure parts: settings, migrations, cursors, times, Prometheus text, the step statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from agentlog.errors import ConfigError
from agentlog.projections.api.params import (
    TIME_CURSOR,
    Rfc3339,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from agentlog.projections.api.prometheus import render
from agentlog.projections.config import ProjectionSettings, check_schema
from agentlog.projections.errors import ProjectionError
from agentlog.projections.folds.metrics import BUCKETS, one_hot
from agentlog.projections.folds.steps import step_after
from agentlog.projections.migrate import load_migrations
from agentlog.projections.rebuild import tables_of
from agentlog.projections.tables import ALL_TABLES, STEPS, WORKFLOWS
from agentlog.schemas.events import (
    StepScheduled,
    TaskCancelled,
    TaskCompleted,
    new_envelope,
)
from agentlog.settings import Settings

T0 = datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_settings_read_the_environment_and_name_bad_values() -> None:
    settings = Settings.from_env(
        {
            "AGENTLOG_PROJECTION_SCHEMA": "ops",
            "AGENTLOG_API_TOKEN": "s3cr3t",
            "AGENTLOG_API_HOST": "0.0.0.0",
            "AGENTLOG_API_PORT": "9",
        }
    )
    s = ProjectionSettings.from_settings(settings)
    assert (s.schema, s.api_token, s.api_host, s.api_port) == ("ops", "s3cr3t", "0.0.0.0", 9)
    assert "s3cr3t" not in repr(s) + repr(settings)
    assert ProjectionSettings.from_settings(Settings()) == ProjectionSettings()
    with pytest.raises(ConfigError, match="AGENTLOG_PROJECTION_SCHEMA"):
        Settings.from_env({"AGENTLOG_PROJECTION_SCHEMA": "drop table"})
    with pytest.raises(ConfigError, match="AGENTLOG_API_PORT"):
        Settings.from_env({"AGENTLOG_API_PORT": "http"})
    with pytest.raises(ConfigError, match="AGENTLOG_API_PORT"):
        Settings.from_env({"AGENTLOG_API_PORT": "70000"})
    with pytest.raises(ConfigError, match="--schema"):
        check_schema("1abc", "--schema")


def test_migrations_are_numbered_and_create_every_table() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    sql = "\n".join(m.sql for m in migrations)
    for table in ALL_TABLES:
        assert f"CREATE TABLE {table} (" in sql
    # the row dataclasses list the columns in table order
    for table in (WORKFLOWS, STEPS):
        block = sql.split(f"CREATE TABLE {table.name} (")[1].split(");")[0]
        columns = [line.split()[0] for line in block.strip().splitlines() if line.strip()]
        columns = [c for c in columns if c not in ("PRIMARY",)]
        assert tuple(columns) == table.columns


def test_rebuild_names_projections() -> None:
    assert tables_of("metrics") == ("agent_metrics_minute", "lock_metrics_minute")
    assert tables_of("all") == ALL_TABLES
    with pytest.raises(ProjectionError, match="unknown projection 'x'"):
        tables_of("x")


@pytest.mark.parametrize("key", ["wf-1", "a.b.c", "with space/and:colon", ""])
def test_cursors_round_trip_and_match_their_pattern(key: str) -> None:
    import re

    for moment in (T0, datetime(1901, 1, 1, tzinfo=UTC), datetime(4000, 1, 1, tzinfo=UTC)):
        cursor = encode_cursor(moment, key)
        assert re.match(TIME_CURSOR, cursor)
        assert decode_cursor(cursor) == (moment, key)


def test_query_times_must_be_rfc3339_with_an_offset() -> None:
    adapter: TypeAdapter[datetime] = TypeAdapter(Rfc3339)
    assert adapter.validate_python("2025-01-02T03:04:05Z") == datetime(
        2025, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert adapter.validate_python("2025-01-02T03:04:05.123456789+02:00").microsecond == 123456
    for bad in ("0.5", "2025-01-02", "2025-01-02T03:04:05", "yesterday"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    assert parse_time("t", datetime(2025, 1, 1)) == datetime(2025, 1, 1, tzinfo=UTC)


def test_prometheus_text_has_cumulative_buckets_and_lag() -> None:
    kind = {
        "agent_kind": "writer",
        "completed": 3,
        "failed": 1,
        "retried": 1,
        "timed_out": 0,
        "latency_us_sum": 1_500_000,
        "latency_buckets": [
            a + b + c for a, b, c in zip(one_hot(3), one_hot(40), one_hot(4000), strict=True)
        ],
        "cache_hits": 2,
        "cache_misses": 1,
        "cache_tokens_saved": 10,
        "cache_latency_saved_us": 2_000,
    }
    locks = dict.fromkeys(("requested", "granted", "queued", "denied", "released", "expired"), 1)
    locks |= {"wait_buckets": [0] * BUCKETS, "wait_us_sum": 0}
    now = datetime(2031, 1, 1, tzinfo=UTC)
    text = render(
        {
            "workflows": {"running": 2, "succeeded": 5},
            "kinds": [kind],
            "locks": locks,
            "events": [{"topic": "a.journal", "type": "WorkflowStarted", "events": 7}],
            "dead_letters": [{"error_reason": "bad_magic", "n": 1}],
            "agents": {"alive": 1},
            "lag": [
                {
                    "topic": "a.journal",
                    "kafka_partition": 0,
                    "next_offset": 10,
                    "lag": 4,
                    "updated_at": now - timedelta(seconds=2),
                }
            ],
        },
        now,
    )
    assert 'agentlog_workflows{status="succeeded"} 5' in text
    assert 'agentlog_step_latency_seconds_bucket{agent_kind="writer",le="0.005"} 1' in text
    assert 'agentlog_step_latency_seconds_bucket{agent_kind="writer",le="0.05"} 2' in text
    assert 'agentlog_step_latency_seconds_bucket{agent_kind="writer",le="+Inf"} 3' in text
    assert 'agentlog_step_latency_seconds_count{agent_kind="writer"} 3' in text
    assert 'agentlog_projector_lag{topic="a.journal",partition="0"} 4' in text
    assert 'agentlog_projector_last_write_age_seconds{topic="a.journal",partition="0"} 2.0' in text
    assert text.endswith("\n")
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))


def _env(name: str, seconds: float) -> object:
    return new_envelope(name, "wf", source="t", occurred_at=T0 + timedelta(seconds=seconds))


def test_a_cancelled_task_shows_as_cancelled_unless_it_finished() -> None:
    common = {"workflow_id": "wf", "step": "s", "task_id": "wf/s/1/0/1", "attempt": 1}
    scheduled = StepScheduled(
        envelope=_env("StepScheduled", 0),  # type: ignore[arg-type]
        agent_kind="writer",
        input={},
        **common,  # type: ignore[arg-type]
    )
    cancelled = TaskCancelled(
        envelope=_env("TaskCancelled", 2),  # type: ignore[arg-type]
        agent_kind="writer",
        reason="workflow cancelled",
        **common,  # type: ignore[arg-type]
    )
    row, _ = step_after(None, scheduled)
    row, _ = step_after(row, cancelled)
    assert (row.status, row.cancel_reason) == ("cancelled", "workflow cancelled")
    assert (row.run, row.item, row.kind) == (1, 0, "task")
    done = TaskCompleted(
        envelope=_env("TaskCompleted", 1),  # type: ignore[arg-type]
        output={},
        agent_id="a",
        **common,  # type: ignore[arg-type]
    )
    reported, _ = step_after(row, done)
    assert reported.agent_outcome == "completed"
    assert reported.status == "cancelled"  # the journal never recorded a completion


def test_timestamptz_codec_gives_asyncpgs_values() -> None:
    """The projector's timestamptz codec: microseconds since 2000-01-01 UTC, as stored."""
    from datetime import date, timezone

    from agentlog.projections.db import decode_timestamptz, encode_timestamptz

    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert encode_timestamptz(epoch) == (0,)
    assert encode_timestamptz(epoch + timedelta(microseconds=1)) == (1,)
    assert encode_timestamptz(epoch - timedelta(microseconds=1)) == (-1,)
    plus5 = datetime(2031, 3, 4, 10, 6, 7, 890123, tzinfo=timezone(timedelta(hours=5)))
    assert encode_timestamptz(plus5) == encode_timestamptz(plus5.astimezone(UTC))
    for value in (T0, epoch, datetime(1970, 1, 1, tzinfo=UTC), plus5):
        back = decode_timestamptz(encode_timestamptz(value))
        assert back == value
        assert back.tzinfo == UTC
    # naive values are local time and dates local midnight, as asyncpg's own encoder reads them
    naive = datetime(2031, 3, 4, 5, 6, 7)
    assert encode_timestamptz(naive) == encode_timestamptz(naive.astimezone(UTC))
    assert encode_timestamptz(date(2031, 3, 4)) == encode_timestamptz(
        datetime(2031, 3, 4).astimezone(UTC)
    )
    assert encode_timestamptz(datetime.max) == (2**63 - 1,)
    assert encode_timestamptz(datetime.min) == (-(2**63),)
    assert decode_timestamptz((2**63 - 1,)) == datetime.max
    assert decode_timestamptz((-(2**63),)) == datetime.min


def test_the_projector_refuses_a_gc_threshold_below_one() -> None:
    """raise_gc_threshold itself: tests/unit/test_settings.py."""
    from agentlog.projections.runner import ProjectorConfig

    with pytest.raises(ValueError, match="gc_threshold"):
        ProjectorConfig(gc_threshold=0)
