"""The projection and API part of :class:`agentlog.settings.Settings`, as the API uses it.

The variables (``AGENTLOG_PROJECTION_SCHEMA``, ``AGENTLOG_API_TOKEN``,
``AGENTLOG_API_HOST``, ``AGENTLOG_API_PORT``) are read with every other one by
``Settings.from_env``; :meth:`ProjectionSettings.from_settings` takes them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentlog.errors import ConfigError
from agentlog.settings import DEFAULT_API_PORT, Settings, check_schema_name

DEFAULT_SCHEMA = "agentlog"


def check_schema(name: str, setting: str = "AGENTLOG_PROJECTION_SCHEMA") -> str:
    """Return ``name`` if it can name a PostgreSQL schema unquoted, else raise ConfigError."""
    return check_schema_name(name, setting)


@dataclass(frozen=True, slots=True)
class ProjectionSettings:
    """Where the read models live and how the API is served.

    Attributes:
        schema: the PostgreSQL schema of every read model (``AGENTLOG_PROJECTION_SCHEMA``).
        api_token: when set, every API route requires ``Authorization: Bearer <token>``
            (``AGENTLOG_API_TOKEN``).
        api_host: the address the API listens on (``AGENTLOG_API_HOST``).
        api_port: the port the API listens on (``AGENTLOG_API_PORT``).
    """

    schema: str = DEFAULT_SCHEMA
    api_token: str | None = field(default=None, repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT

    def __post_init__(self) -> None:
        check_schema(self.schema)
        if not 0 < self.api_port < 65536:
            raise ConfigError(
                "AGENTLOG_API_PORT", self.api_port, "not a TCP port", "Use 1..65535, e.g. 8080."
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectionSettings:
        """The projection and API fields of ``settings``."""
        return cls(
            schema=settings.projection_schema,
            api_token=settings.api_token,
            api_host=settings.api_host,
            api_port=settings.api_port or DEFAULT_API_PORT,
        )
