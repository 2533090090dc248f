"""What the lock manager takes as input, and how holders' commands travel on the topic.

Inputs of the core (:data:`LockInput`):

* ``LockRequested`` (any client), as in the schema;
* :class:`ReleaseRequest`: a holder gives its lease back, or a waiter withdraws;
* :class:`RenewRequest`: a holder asks for ``ttl_ms`` more from now;
* :class:`LockTimer`: a lease expiry or a wait deadline is due (made by the runner).

**Single writer.** Only the lock manager writes decisions (``LockGranted``,
``LockQueued``, ``LockDenied``, ``LockRenewed``, ``LockReleased``,
``LockExpired``, all with ``envelope.source == "lock-manager"``). Holders send
commands; the manager decides whether a release or renewal takes effect (a
holder paused past its lease must not release or extend its successor's lease).

**Wire encoding.** A release command is a ``LockReleaseRequested``, a renew
command a ``LockRenewRequested`` (:func:`release_event`, :func:`renew_event`);
their type alone says they are commands.

**Deprecated interim encoding**, still accepted from older clients and older
orchestrators: a ``LockReleased`` /
``LockRenewed`` whose ``envelope.source`` is *not* ``"lock-manager"``; such a
renew request's ``lease_expires_at`` encodes the asked duration as
``occurred_at + ttl_ms``. Because the locks topic is kept forever, old
commands in this form stay in the log: everything that reads it must keep
telling decisions from commands with :func:`is_decision`, never by type alone.
:func:`command_of` is the one place that decodes both encodings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from agentlog.schemas.events import (
    EVENT_ID_NAMESPACE,
    Envelope,
    Event,
    LockDenied,
    LockExpired,
    LockGranted,
    LockQueued,
    LockReleased,
    LockReleaseRequested,
    LockRenewed,
    LockRenewRequested,
    LockRequested,
    new_envelope,
)

from .state import MANAGER_SOURCE

LockDecision = LockGranted | LockQueued | LockDenied | LockRenewed | LockReleased | LockExpired
"""The events only the lock manager writes."""

_DECISION_TYPES = (LockGranted, LockQueued, LockDenied, LockRenewed, LockReleased, LockExpired)

LockCommand = LockReleaseRequested | LockRenewRequested
"""The command events holders send about a request they made (release, renew)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRequest:
    """A holder releases its lease, or a waiter withdraws its request.

    Decoded from a ``LockReleaseRequested`` (or the interim ``LockReleased``
    from a client) by :func:`command_of`.

    Attributes:
        envelope: of the command (its ``event_id`` is the cause of the decision).
        resource: the resource.
        request_id: the request whose lease (or place in the queue) ends.
        fencing_token: the lease's token; 0 when the sender never saw a grant
            (a waiter giving up), which matches whatever was granted to the request.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewRequest:
    """A holder asks for its lease to end ``ttl_ms`` after the manager decides.

    Decoded from a ``LockRenewRequested`` (or the interim ``LockRenewed``
    from a client) by :func:`command_of`.

    Attributes:
        envelope: of the command.
        resource: the resource.
        request_id: the held request.
        fencing_token: the lease's token (0 matches the request's lease).
        ttl_ms: the new lease length, counted from the manager's decision time.
    """

    envelope: Envelope
    resource: str
    request_id: str
    fencing_token: int = 0
    ttl_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LockTimer:
    """A due lease expiry or wait deadline: an input of ``decide``, not an Avro event.

    Attributes:
        resource: the resource.
        kind: ``"expiry"`` (the holder's lease) or ``"wait"`` (a waiter's deadline).
        request_id: whose lease or wait it is.
        due_at: when it is due (the lock manager's clock).
    """

    resource: str
    kind: str
    request_id: str
    due_at: datetime

    @property
    def event_id(self) -> str:
        """The deterministic id the decisions of this timer name as their cause."""
        name = f"lock-timer/{self.resource}/{self.kind}/{self.request_id}/{self.due_at.isoformat()}"
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


LockInput = LockRequested | ReleaseRequest | RenewRequest | LockTimer
"""What ``decide`` takes."""


def is_decision(event: Event) -> TypeGuard[LockDecision]:
    """Whether ``event`` is a lock-manager decision (not a request or a command).

    A decision type is not enough: the interim command encoding (deprecated,
    still in retained logs) uses ``LockReleased`` / ``LockRenewed`` from clients.
    """
    return isinstance(event, _DECISION_TYPES) and event.envelope.source == MANAGER_SOURCE


def command_of(event: Event) -> LockRequested | ReleaseRequest | RenewRequest | None:
    """The input a locks-topic event is, or None for decisions and foreign events.

    Decodes both the command events and the deprecated interim encoding (a
    ``LockReleased`` / ``LockRenewed`` from a source other than the lock manager).
    """
    match event:
        case LockRequested():
            return event
        case LockReleaseRequested():
            return ReleaseRequest(
                envelope=event.envelope,
                resource=event.resource,
                request_id=event.request_id,
                fencing_token=event.fencing_token,
            )
        case LockRenewRequested():
            return RenewRequest(
                envelope=event.envelope,
                resource=event.resource,
                request_id=event.request_id,
                fencing_token=event.fencing_token,
                ttl_ms=event.ttl_ms,
            )
    return _interim_command_of(event)


def _interim_command_of(event: Event) -> ReleaseRequest | RenewRequest | None:
    """A command in the deprecated interim encoding, or None (decisions included)."""
    if event.envelope.source == MANAGER_SOURCE:
        return None
    if isinstance(event, LockReleased):
        return ReleaseRequest(
            envelope=event.envelope,
            resource=event.resource,
            request_id=event.request_id,
            fencing_token=event.fencing_token,
        )
    if isinstance(event, LockRenewed):
        asked = event.lease_expires_at - event.envelope.occurred_at
        return RenewRequest(
            envelope=event.envelope,
            resource=event.resource,
            request_id=event.request_id,
            fencing_token=event.fencing_token,
            ttl_ms=max(0, int(asked.total_seconds() * 1000)),
        )
    return None


def release_event(
    resource: str,
    request_id: str,
    token: int = 0,
    *,
    source: str,
    reason: str = "",
    causation_id: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> LockReleaseRequested:
    """A release command: give back the lease of ``request_id``, or withdraw it from the queue.

    Args:
        resource: the resource.
        request_id: the request whose lease (or place in the queue) ends.
        token: the lease's token; 0 when no grant was seen (matches any grant).
        source: who sends it; never the lock manager's.
        reason: why, for people reading the history.
        causation_id: the event that caused it (the grant, or the request).
        correlation_id: the request's conversation.
        traceparent: W3C trace context, if any.

    Raises:
        ValueError: ``source`` is the lock manager's.
    """
    _check_source(source)
    return LockReleaseRequested(
        envelope=new_envelope(
            "LockReleaseRequested",
            resource,
            source=source,
            causation_id=causation_id,
            correlation_id=correlation_id,
            traceparent=traceparent,
        ),
        resource=resource,
        request_id=request_id,
        fencing_token=token,
        reason=reason,
    )


def renew_event(
    resource: str,
    request_id: str,
    token: int,
    ttl_ms: int,
    *,
    source: str,
    causation_id: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    occurred_at: datetime | None = None,
) -> LockRenewRequested:
    """A renew command: the lease of ``request_id`` should end ``ttl_ms`` after the decision.

    Raises:
        ValueError: ``source`` is the lock manager's.
    """
    _check_source(source)
    return LockRenewRequested(
        envelope=new_envelope(
            "LockRenewRequested",
            resource,
            source=source,
            causation_id=causation_id,
            correlation_id=correlation_id,
            traceparent=traceparent,
            occurred_at=occurred_at,
        ),
        resource=resource,
        request_id=request_id,
        fencing_token=token,
        ttl_ms=ttl_ms,
    )


def _check_source(source: str) -> None:
    if source == MANAGER_SOURCE:
        raise ValueError(
            f"source={source!r} marks lock-manager decisions; commands need another source, "
            "e.g. 'lock-client'"
        )
