"""Settings of the projector and the query API that ``agentlog.settings.Settings`` lacks.

Read once at the edge from ``AGENTLOG_PROJECTION_SCHEMA``, ``AGENTLOG_API_TOKEN``,
``AGENTLOG_API_HOST`` and ``AGENTLOG_API_PORT``, and passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentlog.errors import ConfigError

DEFAULT_SCHEMA = "agentlog"
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(name: str, setting: str = "AGENTLOG_PROJECTION_SCHEMA") -> str:
    """Return ``name`` if it can name a PostgreSQL schema unquoted, else raise ConfigError."""
    if not _SCHEMA_RE.match(name):
        raise ConfigError(
            setting,
            name,
            "a schema name must be 1-63 lowercase letters, digits or '_', not starting "
            "with a digit",
            "Use e.g. 'agentlog' or 'agentlog_shadow'.",
        )
    return name


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
    api_port: int = 8080

    def __post_init__(self) -> None:
        check_schema(self.schema)
        if not 0 < self.api_port < 65536:
            raise ConfigError(
                "AGENTLOG_API_PORT", self.api_port, "not a TCP port", "Use 1..65535, e.g. 8080."
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ProjectionSettings:
        """Read the ``AGENTLOG_*`` variables above, then apply non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("AGENTLOG_PROJECTION_SCHEMA"):
            values["schema"] = env["AGENTLOG_PROJECTION_SCHEMA"]
        if env.get("AGENTLOG_API_TOKEN"):
            values["api_token"] = env["AGENTLOG_API_TOKEN"]
        if env.get("AGENTLOG_API_HOST"):
            values["api_host"] = env["AGENTLOG_API_HOST"]
        if env.get("AGENTLOG_API_PORT"):
            raw = env["AGENTLOG_API_PORT"]
            try:
                values["api_port"] = int(raw)
            except ValueError:
                raise ConfigError(
                    "AGENTLOG_API_PORT", raw, "not a whole number", "Use e.g. 8080."
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
