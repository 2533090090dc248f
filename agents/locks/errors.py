"""Errors of the lock SDK and the lock manager; all are :class:`~agentlog.errors.AgentlogError`."""

from __future__ import annotations

from agentlog.errors import AgentlogError


class LockError(AgentlogError):
    """Root of the lock errors."""


class InvalidLockRequestError(LockError):
    """A lock request the client refuses to send; the message names the argument and the fix."""


class LockDeniedError(LockError):
    """The lock manager refused the request (busy and no wait, wait timeout, invalid).

    Attributes:
        resource: the resource.
        request_id: the refused request.
        reason: the manager's ``LockDenied.reason`` (starts with ``busy``,
            ``wait timeout``, ``cancelled``, ``invalid request`` or ``internal error``).
    """

    def __init__(self, resource: str, request_id: str, reason: str) -> None:
        self.resource = resource
        self.request_id = request_id
        self.reason = reason
        self.retriable = not reason.startswith(("invalid request", "internal error"))
        hint = " Try again later or wait longer (wait=...)." if self.retriable else ""
        super().__init__(f"lock on {resource!r} denied (request {request_id}): {reason}.{hint}")


class LockTimeoutError(LockDeniedError):
    """No decision arrived in time: is a lock manager running for this topic prefix?"""

    def __init__(self, resource: str, request_id: str, seconds: float, topic: str) -> None:
        super().__init__(
            resource,
            request_id,
            f"no decision from the lock manager within {seconds:g} s on {topic}; "
            "start one with `agentlog locks run` (or check its log); the request was withdrawn",
        )
        self.retriable = True


class LockLostError(LockError):
    """A held lease ended before its holder released it (expired, renewal not confirmed).

    Writes made after this point must carry the fencing token so that a fenced
    sink rejects them (``agentlog.agents.locks.fencing``).

    Attributes:
        resource: the resource.
        request_id: the request the lease was granted to.
        token: the lease's fencing token.
        reason: what happened.
    """

    retriable = True

    def __init__(self, resource: str, request_id: str, token: int, reason: str) -> None:
        self.resource = resource
        self.request_id = request_id
        self.token = token
        self.reason = reason
        super().__init__(
            f"lease on {resource!r} (token {token}, request {request_id}) lost: {reason}; "
            "work done under it may have been rejected by fenced sinks"
        )


class LockManagerError(LockError):
    """The lock manager stopped because of a failure; restarting it resumes from the log."""

    retriable = True


class FenceError(LockError):
    """A fenced sink (PostgreSQL, Redis) failed; the write did not happen."""

    retriable = True
