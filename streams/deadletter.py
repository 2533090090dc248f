"""The dead-letter writer: poison records go to ``agentlog.deadletter`` with their coordinates."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiokafka.structs import ConsumerRecord

from agentlog.errors import DecodeError
from agentlog.schemas.events import DeadLetter, DeadLetterHeader, new_envelope
from agentlog.settings import Settings
from agentlog.streams.topics import DEADLETTER

if TYPE_CHECKING:
    from agentlog.streams.producer import EventProducer

logger = logging.getLogger(__name__)


class DeadLetterWriter:
    """Writes a ``DeadLetter`` event for a record that cannot be processed.

    The dead letter keeps the original key as its record key (so it lands
    beside its workflow's other dead letters), the original topic, partition
    and offset, the error and the raw bytes, and is acknowledged (acks=all)
    before the consumer moves past the record: nothing is lost.
    """

    def __init__(self, settings: Settings, producer: EventProducer) -> None:
        """Args:
        settings: for the dead-letter topic name and the ``source`` of the event.
        producer: a started producer (shared with the component's other output).
        """
        self._settings = settings
        self._producer = producer
        self.topic = settings.topic(DEADLETTER.name)

    async def write(
        self, record: ConsumerRecord, error: DecodeError, *, consumer_group: str | None
    ) -> None:
        """Dead-letter ``record`` and wait for the broker's acknowledgement."""
        if record.topic == self.topic:
            # never dead-letter a dead letter: that could loop; it stays where it is
            logger.error(
                "undecodable record in the dead-letter topic itself %s[%s]@%s: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            return
        key = record.key.decode("utf-8", "replace") if record.key is not None else ""
        event = DeadLetter(
            envelope=new_envelope("DeadLetter", key, source=self._settings.source),
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=record.key,
            error_reason=error.reason,
            error=error.detail,
            raw=record.value or b"",
            original_timestamp=_timestamp(record.timestamp),
            headers=tuple(DeadLetterHeader(key=k, value=v) for k, v in record.headers or ()),
            consumer_group=consumer_group or "",
        )
        logger.warning(
            "dead-lettered %s[%s]@%s (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            error.reason,
            error.detail,
        )
        await self._producer.send(self.topic, event, key=None, headers=list(record.headers or ()))


def _timestamp(ms: int | None) -> datetime | None:
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)
