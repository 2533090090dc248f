"""Errors of the projections: the database is down, a schema name is unusable, a rebuild differs."""

from __future__ import annotations

from agentlog.errors import AgentlogError


class DatabaseUnavailable(AgentlogError):
    """PostgreSQL cannot be reached or is restarting; the same call may succeed later."""

    retriable = True

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(
            f"PostgreSQL is unavailable: {problem}. Check that it runs and that "
            "AGENTLOG_POSTGRES_DSN points at it; agentlog retries by itself."
        )


class ProjectionError(AgentlogError):
    """A projection cannot do what was asked (bad name, unknown projection, failed rebuild)."""


class MigrationError(ProjectionError):
    """The database schema is newer than this agentlog, or a migration was changed after use."""
