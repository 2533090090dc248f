"""What the routes share: the database, the writer, settings."""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.projections.api.database import Database
from agentlog.projections.api.writer import Writer
from agentlog.projections.config import ProjectionSettings
from agentlog.settings import Settings


@dataclass(slots=True)
class ApiState:
    """Lives on ``app.state.api``.

    Attributes:
        settings: broker, PostgreSQL, topic prefix.
        projection: schema, token.
        db: the read models.
        writer: produces the write routes' events.
        alive_after_s: agents seen within this many seconds (and not deregistered) are alive.
        poll_interval: seconds between checks of a live tail.
        end_grace: seconds a live tail keeps going after the terminal event, for
            events of other topics (responses, tasks) the projector stores later.
    """

    settings: Settings
    projection: ProjectionSettings
    db: Database
    writer: Writer
    alive_after_s: float = 30.0
    poll_interval: float = 0.25
    end_grace: float = 1.0
