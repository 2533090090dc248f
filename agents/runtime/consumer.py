"""The tasks consumer of a pool: an EventConsumer that can pause fetching."""

from __future__ import annotations

from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer


def group_id_for(settings: Settings, kind: str) -> str:
    """The consumer group of the pool of ``kind``: ``<prefix>.agents.<kind>``."""
    return settings.topic(f"agents.{kind}")


class TaskConsumer(EventConsumer):
    """An EventConsumer with back-pressure: pause every partition while the buffer is full.

    Paused partitions are still polled (returning nothing), which keeps the
    member within ``max.poll.interval.ms`` however long the running tasks take.
    """

    def pause_all(self) -> None:
        """Stop returning records from every assigned partition."""
        parts = self.assignment()
        if parts:
            self._consumer.pause(*parts)

    def resume_all(self) -> None:
        """Return records again from every paused partition."""
        parts = self._consumer.paused()
        if parts:
            self._consumer.resume(*parts)
