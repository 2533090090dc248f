"""Run one handler on one task: deadline, error mapping, timing; build the response event.

No Kafka here: :func:`run_task` takes a handler and a context and returns an
:class:`Outcome`; :func:`response_for` turns it into ``TaskCompleted`` or
``TaskFailed``. The pool does the I/O around them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agentlog.agents.runtime.context import TaskContext
from agentlog.agents.runtime.definition import Handler
from agentlog.agents.runtime.errors import (
    Failure,
    deadline_failure,
    failure_for,
    invalid_output,
)
from agentlog.schemas.events import (
    JsonValue,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    TaskUsage,
    new_envelope,
    utc_now,
)
from agentlog.schemas.slots import install_slot_init
from agentlog.streams.codec import dumps_json

Clock = Callable[[], datetime]


@install_slot_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """What running a task gave: an output, or a failure; and what it used."""

    output: JsonValue
    failure: Failure | None
    usage: TaskUsage

    @property
    def ok(self) -> bool:
        """True when the task completed."""
        return self.failure is None


async def run_task(handler: Handler, ctx: TaskContext, *, clock: Clock = utc_now) -> Outcome:
    """Run ``handler(ctx)`` within the task's deadline; never raises (but CancelledError).

    A task that arrives after its deadline is not run; one that is still
    running at its deadline is cancelled. Both fail retryably with kind
    ``deadline_exceeded``. An output JSON cannot hold, or with a string
    UTF-8 cannot encode (a lone surrogate), fails terminally with kind
    ``invalid_output``.
    """
    deadline = ctx.deadline
    if deadline is not None and (late := (clock() - deadline).total_seconds()) >= 0:
        return Outcome(None, deadline_failure(deadline.isoformat(), late), TaskUsage())
    started = time.monotonic()
    failure: Failure | None = None
    output: JsonValue = None
    try:
        if deadline is None:
            output = await handler(ctx)
        else:
            output = await _within(handler, ctx, (deadline - clock()).total_seconds())
    except _DeadlinePassed:
        failure = deadline_failure(deadline.isoformat() if deadline else "?")
    except Exception as error:  # noqa: BLE001 - every handler error becomes a TaskFailed
        failure = failure_for(error)
    latency_ms = (time.monotonic() - started) * 1000.0
    if failure is None:
        failure = _check_output(output)
    usage = ctx.usage.with_latency(round(latency_ms, 3))
    return Outcome(output=None if failure else output, failure=failure, usage=usage)


class _DeadlinePassed(Exception):
    pass


async def _within(handler: Handler, ctx: TaskContext, seconds: float) -> JsonValue:
    loop = asyncio.get_running_loop()
    # set the flag first, so threads the handler started can see it before the cancel lands
    flag = loop.call_later(max(seconds, 0.0), ctx.cancelled.set)
    try:
        async with asyncio.timeout(max(seconds, 0.0)) as scope:
            return await handler(ctx)
    except TimeoutError:
        if scope.expired():
            raise _DeadlinePassed from None
        raise  # the handler's own TimeoutError: an ordinary retryable failure
    finally:
        flag.cancel()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_output(output: JsonValue) -> Failure | None:
    kind = type(output)
    if output is None or kind is int or kind is bool:
        return None  # JSON and UTF-8 hold every value of these
    try:
        # what the codec writes must be JSON, and UTF-8 (which has no surrogates)
        text = output if isinstance(output, str) else dumps_json(output)
        if not text.isascii():
            text.encode()
    except UnicodeEncodeError:
        return invalid_output(
            f"the handler's output is not valid UTF-8: {_surrogate_in(output)}; decode "
            "bytes with errors='replace' (not 'surrogateescape'), or drop U+D800-U+DFFF"
        )
    except (TypeError, ValueError, RecursionError) as e:
        return invalid_output(
            f"the handler returned a value JSON cannot hold ({e}); return dicts, lists, "
            "str, int, float (finite), bool or None"
        )
    return None


def _surrogate_in(output: JsonValue) -> str:
    """Which string of ``output`` holds a lone surrogate, by its JSON path."""
    todo: list[tuple[object, str]] = [(output, "$")]
    while todo:
        value, path = todo.pop()
        if isinstance(value, str):
            if found := _SURROGATE.search(value):
                return f"{path} holds a lone surrogate {found[0]!r} at index {found.start()}"
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and (found := _SURROGATE.search(key)):
                    return f"the key {key[:60]!r} in {path} holds a lone surrogate {found[0]!r}"
                step = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"
                todo.append((item, path + step))
        elif isinstance(value, list | tuple):
            todo.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return "a string holds a lone surrogate"


def response_for(
    task: TaskRequested, outcome: Outcome, *, agent_id: str
) -> TaskCompleted | TaskFailed:
    """The ``TaskCompleted`` or ``TaskFailed`` answering ``task``, keyed by its workflow."""
    type_name = "TaskCompleted" if outcome.failure is None else "TaskFailed"
    envelope = new_envelope(
        type_name,
        task.workflow_id,
        source=agent_id,
        correlation_id=task.envelope.correlation_id,
        causation_id=task.envelope.event_id,
        traceparent=task.envelope.traceparent,
    )
    if outcome.failure is None:
        return TaskCompleted(
            envelope=envelope,
            task_id=task.task_id,
            workflow_id=task.workflow_id,
            step=task.step,
            attempt=task.attempt,
            output=outcome.output,
            usage=outcome.usage,
            agent_id=agent_id,
        )
    return TaskFailed(
        envelope=envelope,
        task_id=task.task_id,
        workflow_id=task.workflow_id,
        step=task.step,
        attempt=task.attempt,
        error_kind=outcome.failure.kind,
        message=outcome.failure.message,
        retryable=outcome.failure.retryable,
        agent_id=agent_id,
    )
