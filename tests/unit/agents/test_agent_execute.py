"""Running one handler: outputs, error mapping, deadlines, usage; the response events."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from agentlog.agents.runtime import (
    DEADLINE_EXCEEDED,
    INVALID_OUTPUT,
    RetryableError,
    TaskContext,
    TerminalError,
    failure_for,
    response_for,
    run_task,
)
from agentlog.agents.runtime.errors import MAX_MESSAGE_CHARS, Failure
from agentlog.schemas.events import JsonValue, TaskCompleted, TaskFailed
from agentlog.streams.codec import AvroCodec

# -- error mapping -------------------------------------------------------------------


def test_terminal_and_retryable_errors_keep_their_kind_and_message() -> None:
    assert failure_for(TerminalError("bad_input", "no pr")) == Failure("bad_input", "no pr", False)
    assert failure_for(RetryableError("rate_limited", "429")) == Failure(
        "rate_limited", "429", True
    )


def test_any_other_exception_is_retryable_named_by_its_class() -> None:
    assert failure_for(KeyError("repo")) == Failure("KeyError", "'repo'", True)
    assert failure_for(RuntimeError()) == Failure("RuntimeError", "RuntimeError()", True)


def test_long_messages_are_clipped() -> None:
    failure = failure_for(ValueError("x" * (MAX_MESSAGE_CHARS + 50)))
    assert len(failure.message) == MAX_MESSAGE_CHARS


def test_an_error_kind_must_be_a_code() -> None:
    with pytest.raises(ValueError, match="error kind 'the input is bad'"):
        TerminalError("the input is bad")


# -- run_task ----------------------------------------------------------------------------


async def test_output_and_usage_with_measured_latency() -> None:
    async def handler(ctx: TaskContext) -> JsonValue:
        ctx.record_usage(input_tokens=10, output_tokens=3, cost_usd=0.01)
        ctx.record_usage(input_tokens=5)
        await asyncio.sleep(0.02)
        return {"echo": ctx.input}

    outcome = await run_task(handler, TaskContext.local({"a": 1}))
    assert outcome.ok
    assert outcome.output == {"echo": {"a": 1}}
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (15, 3)
    assert outcome.usage.cost_usd == pytest.approx(0.01)
    assert outcome.usage.latency_ms >= 15


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TerminalError("bad_input", "no pr"), Failure("bad_input", "no pr", False)),
        (RetryableError("rate_limited", "slow down"), Failure("rate_limited", "slow down", True)),
        (
            ZeroDivisionError("division by zero"),
            Failure("ZeroDivisionError", "division by zero", True),
        ),
        (TimeoutError("upstream"), Failure("TimeoutError", "upstream", True)),
    ],
)
async def test_handler_errors_become_failures(error: Exception, expected: Failure) -> None:
    async def handler(ctx: TaskContext) -> JsonValue:
        raise error

    outcome = await run_task(handler, TaskContext.local(deadline=datetime.now(UTC) + timedelta(60)))
    assert outcome.failure == expected
    assert outcome.output is None


async def test_a_handler_still_running_at_the_deadline_is_cancelled() -> None:
    seen: dict[str, bool] = {}

    async def handler(ctx: TaskContext) -> JsonValue:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen["flag_set_before_cancel"] = ctx.cancelled.is_set()
            raise
        return None

    ctx = TaskContext.local(deadline=datetime.now(UTC) + timedelta(seconds=0.1))
    started = asyncio.get_running_loop().time()
    outcome = await run_task(handler, ctx)
    assert asyncio.get_running_loop().time() - started < 2
    assert outcome.failure is not None
    assert outcome.failure.kind == DEADLINE_EXCEEDED
    assert outcome.failure.retryable
    assert seen == {"flag_set_before_cancel": True}


async def test_a_task_past_its_deadline_is_not_run() -> None:
    calls: list[str] = []

    async def handler(ctx: TaskContext) -> JsonValue:
        calls.append(ctx.task_id)
        return None

    ctx = TaskContext.local(deadline=datetime.now(UTC) - timedelta(seconds=3))
    outcome = await run_task(handler, ctx)
    assert calls == []
    assert outcome.failure is not None
    assert outcome.failure.kind == DEADLINE_EXCEEDED
    assert "after its deadline" in outcome.failure.message


async def test_an_output_json_cannot_hold_fails_terminally() -> None:
    async def handler(ctx: TaskContext) -> JsonValue:
        return {"when": datetime.now(UTC)}  # type: ignore[dict-item]

    outcome = await run_task(handler, TaskContext.local())
    assert outcome.failure is not None
    assert (outcome.failure.kind, outcome.failure.retryable) == (INVALID_OUTPUT, False)


@pytest.mark.parametrize(
    ("output", "where"),
    [
        ({"review": {"comments": ["ok", "bad \ud800 byte"]}}, "$.review.comments[1]"),
        ({"files": {"a.py": 1, "b\udcff.py": 2}}, "the key 'b\\udcff.py' in $.files"),
        ("\ud83d\ude00", "$ holds"),  # a pair written as two surrogates is no better
    ],
)
async def test_a_lone_surrogate_fails_terminally_naming_where(
    output: JsonValue, where: str
) -> None:
    async def handler(ctx: TaskContext) -> JsonValue:
        return output

    outcome = await run_task(handler, TaskContext.local())
    assert outcome.failure is not None
    assert (outcome.failure.kind, outcome.failure.retryable) == (INVALID_OUTPUT, False)
    assert outcome.output is None
    assert "not valid UTF-8" in outcome.failure.message
    assert where in outcome.failure.message
    assert "lone surrogate" in outcome.failure.message
    assert "errors='replace'" in outcome.failure.message


async def test_non_ascii_output_is_fine_and_every_answer_encodes() -> None:
    ctx = TaskContext.local()

    async def ok(c: TaskContext) -> JsonValue:
        return {"text": "é 中文 😀", "ключ": ["\u2028"]}

    async def raising(c: TaskContext) -> JsonValue:
        raise TerminalError("bad_input", "cannot decode \udcff")

    async def unencodable(c: TaskContext) -> JsonValue:
        return {"\ud800": 1}

    done = await run_task(ok, ctx)
    assert done.ok
    failed = await run_task(raising, ctx)
    assert failed.failure == Failure("bad_input", "cannot decode \\udcff", False)
    bad = await run_task(unencodable, ctx)
    codec = AvroCodec.default()
    for outcome in (done, failed, bad):
        codec.encode(response_for(ctx.task, outcome, agent_id="a-1"))  # no SchemaError


# -- the context -----------------------------------------------------------------------------


async def test_progress_reports_carry_the_task_and_are_validated() -> None:
    ctx = TaskContext.local({"x": 1}, workflow_id="wf-9", step="review")
    await ctx.progress(0.5, "halfway")
    await ctx.progress(None, "no idea")
    with pytest.raises(ValueError, match=r"fraction=1\.5"):
        await ctx.progress(1.5)
    first, second = ctx.progress_reports
    assert (first.workflow_id, first.step, first.fraction, first.message) == (
        "wf-9",
        "review",
        0.5,
        "halfway",
    )
    assert first.envelope.causation_id == ctx.task.envelope.event_id
    assert second.fraction is None


def test_fencing_token_names_the_missing_lock() -> None:
    ctx = TaskContext.local(fencing_tokens={"repo:acme/shop": 7})
    assert ctx.fencing_token("repo:acme/shop") == 7
    with pytest.raises(TerminalError, match=r"no lock on 'repo:other'.*holds: repo:acme/shop"):
        ctx.fencing_token("repo:other")


def test_the_logger_adds_the_ids(caplog: pytest.LogCaptureFixture) -> None:
    ctx = TaskContext.local(workflow_id="wf-7", step="deploy", agent_kind="deployer")
    with caplog.at_level(logging.INFO, logger="agentlog.agent.deployer"):
        ctx.log.info("deploying %s", "pr-42")
    [record] = caplog.records
    assert record.getMessage().startswith("deploying pr-42 [workflow=wf-7 step=deploy task=")
    assert f"agent={ctx.agent_id}" in record.getMessage()


# -- responses -------------------------------------------------------------------------------


async def test_responses_answer_the_task() -> None:
    ctx = TaskContext.local({"n": 1}, workflow_id="wf-r", attempt=2)

    async def ok(c: TaskContext) -> JsonValue:
        return {"n": 2}

    async def bad(c: TaskContext) -> JsonValue:
        raise TerminalError("bad_input", "nope")

    done = response_for(ctx.task, await run_task(ok, ctx), agent_id="a-1")
    failed = response_for(ctx.task, await run_task(bad, ctx), agent_id="a-1")
    assert isinstance(done, TaskCompleted)
    assert isinstance(failed, TaskFailed)
    for event in (done, failed):
        assert (event.task_id, event.workflow_id, event.attempt, event.agent_id) == (
            ctx.task_id,
            "wf-r",
            2,
            "a-1",
        )
        assert event.envelope.key == "wf-r"
        assert event.envelope.causation_id == ctx.task.envelope.event_id
        assert event.envelope.correlation_id == ctx.task.envelope.correlation_id
    assert done.output == {"n": 2}
    assert (failed.error_kind, failed.message, failed.retryable) == ("bad_input", "nope", False)
