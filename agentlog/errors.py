"""The error hierarchy: one root, subclasses say what the caller should do."""

from __future__ import annotations


class AgentlogError(Exception):
    """Root of every error agentlog raises on purpose.

    Attributes:
        retriable: True when the same call may succeed later unchanged
            (a server that is restarting, a rebalance); False when the caller
            must change something first (a setting, an input).
    """

    retriable: bool = False


class ConfigError(AgentlogError):
    """A setting has a value agentlog cannot use; the message names the setting and the fix."""

    def __init__(self, setting: str, value: object, problem: str, fix: str) -> None:
        self.setting = setting
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}={value!r}: {problem}. {fix}")


class ConnectError(AgentlogError):
    """A server named by a setting could not be reached or refused us."""

    retriable = True

    def __init__(self, setting: str, value: object, problem: str, fix: str = "") -> None:
        self.setting = setting
        self.value = value
        message = f"cannot connect to {setting}={value!r}: {problem}"
        super().__init__(f"{message}. {fix}" if fix else message)


class SchemaError(AgentlogError):
    """A schema file or an event does not match the event contract."""


class DecodeError(AgentlogError):
    """Bytes that are not a decodable agentlog event.

    Attributes:
        reason: a stable machine-readable code: ``truncated``, ``bad_magic``,
            ``unknown_fingerprint``, ``corrupt_body`` or ``unexpected_type``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class EmbeddedServerError(AgentlogError):
    """An embedded server (broker, PostgreSQL, Redis) failed to start or died."""
