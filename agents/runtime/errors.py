"""What a handler raises, and how any exception becomes a ``TaskFailed``.

A handler says what went wrong with :class:`RetryableError` (a retry may help:
a rate limit, a flaky upstream) or :class:`TerminalError` (it will not: bad
input, a red test suite). Both carry a stable ``kind`` that workflows match in
``RetryPolicy.non_retryable``. Any other exception is treated as retryable,
with the exception's class name as its kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentlog.errors import AgentlogError

#: The ``error_kind`` of a task that ran past its deadline.
DEADLINE_EXCEEDED = "deadline_exceeded"
#: The ``error_kind`` of a handler that returned something JSON (or UTF-8) cannot hold.
INVALID_OUTPUT = "invalid_output"
#: The ``error_kind`` of an answer larger than the broker accepts.
OUTPUT_TOO_LARGE = "output_too_large"
#: The ``error_kind`` of a task the orchestrator cancelled (a ``TaskCancelled``; terminal).
CANCELLED = "cancelled"
#: Longest ``message`` put into a ``TaskFailed``; the rest is cut (events stay small).
MAX_MESSAGE_CHARS = 4000

_KIND_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class TaskError(AgentlogError):
    """A handler's own verdict on a task; raise a subclass.

    Attributes:
        kind: stable machine-readable error kind, e.g. ``"rate_limited"``.
        message: for humans; ends up in ``TaskFailed.message``.
    """

    def __init__(self, kind: str, message: str = "") -> None:
        if not _KIND_RE.match(kind):
            raise ValueError(
                f"error kind {kind!r} must be 1-128 letters, digits or '_.:-'; "
                "pass a stable code such as 'rate_limited' first, the message second"
            )
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}" if message else kind)


class RetryableError(TaskError):
    """The task failed but may succeed if tried again (the workflow's retry policy decides)."""

    retriable = True


class TerminalError(TaskError):
    """The task failed and trying again will not help: the step fails without retries."""

    retriable = False


class AgentPoolError(AgentlogError):
    """An agent pool stopped because of a failure in the background (broker, publishing).

    Unfinished tasks were not committed, so another agent (or a restart) gets them again.
    """

    retriable = True


@dataclass(frozen=True, slots=True)
class Failure:
    """How one task failed: the fields of ``TaskFailed`` the handler decides."""

    kind: str
    message: str
    retryable: bool


def failure_for(error: Exception) -> Failure:
    """Map what a handler raised to the failure an agent reports.

    :class:`TerminalError` is terminal, :class:`RetryableError` retryable, and
    any other exception retryable with its class name as the kind (a bug or
    an outage looks the same from here; the workflow's ``non_retryable`` list
    can name the class to stop retries).
    """
    if isinstance(error, TaskError):
        return Failure(error.kind, _clip(error.message), isinstance(error, RetryableError))
    message = str(error) or repr(error)
    return Failure(type(error).__name__, _clip(message), True)


def deadline_failure(deadline_iso: str, late_by_s: float | None = None) -> Failure:
    """The failure of a task that ran, or would start, past its deadline (retryable)."""
    if late_by_s is None:
        message = f"the handler was still running at the task's deadline {deadline_iso}"
    else:
        message = f"the task arrived {late_by_s:.3f} s after its deadline {deadline_iso}"
    return Failure(DEADLINE_EXCEEDED, message, True)


def cancelled_failure(reason: str) -> Failure:
    """The failure an agent reports for a task it dropped or stopped on a ``TaskCancelled``."""
    because = f": {reason}" if reason else ""
    return Failure(CANCELLED, _clip(f"the orchestrator cancelled the task{because}"), False)


def invalid_output(message: str) -> Failure:
    """The terminal ``invalid_output`` failure; ``message`` names the problem and the fix."""
    return Failure(INVALID_OUTPUT, _clip(message), False)


def _clip(message: str) -> str:
    if not message.isascii():
        # a lone surrogate (in a handler's exception, say) would make the answer unencodable
        message = message.encode("utf-8", "backslashreplace").decode()
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"
