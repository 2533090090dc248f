"""The event producer: acks=all, idempotence when the broker has it, traceparent headers."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import RecordMetadata

from agentlog.errors import ConfigError, ConnectError
from agentlog.schemas.events import Event
from agentlog.settings import Settings
from agentlog.streams.capabilities import supports_idempotence
from agentlog.streams.codec import AvroCodec
from agentlog.streams.tracing import HEADER as TRACEPARENT_HEADER

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_START_TIMEOUT_S = 10.0


class EventProducer:
    """Encodes events with the Avro codec and appends them to topics.

    ``acks=all`` always. Idempotence (no duplicates from producer retries) is
    used when the broker grants a producer id: detected at :meth:`start`, not
    assumed, because Tansu has no idempotent producer. :attr:`idempotent`
    says what was detected.

    Use as ``async with EventProducer(settings) as producer:``.
    """

    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec | None = None,
        *,
        client_id: str | None = None,
        idempotence: bool | None = None,
    ) -> None:
        """Args:
        settings: where the cluster is, linger, security.
        codec: the Avro codec (a shared default if None).
        client_id: Kafka client id, defaults to ``<source>-producer``.
        idempotence: True/False forces it; None (default) detects it.
        """
        if settings.kafka_bootstrap is None:
            raise ConfigError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                None,
                "no broker address is set",
                "Set AGENTLOG_KAFKA_BOOTSTRAP=host:port, pass --kafka, or start `agentlog dev`.",
            )
        self._settings = settings
        self._codec = codec or AvroCodec.default()
        self._client_id = client_id or f"{settings.source}-producer"
        self._want_idempotence = idempotence
        self._producer: AIOKafkaProducer | None = None
        self.idempotent = False

    async def start(self) -> None:
        """Connect; idempotent. Raises ConnectError naming AGENTLOG_KAFKA_BOOTSTRAP."""
        if self._producer is not None:
            return
        supported = await supports_idempotence(self._settings)
        if self._want_idempotence and not supported:
            raise ConfigError(
                "idempotence",
                True,
                "the broker does not grant idempotent producer ids",
                "Use a broker with idempotent producers (Apache Kafka, Redpanda) "
                "or let agentlog detect it (idempotence=None).",
            )
        self.idempotent = supported if self._want_idempotence is None else self._want_idempotence
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self.idempotent,
            linger_ms=self._settings.linger_ms,
            request_timeout_ms=30_000,
            **self._settings.kafka_client_options(),
        )
        try:
            await asyncio.wait_for(producer.start(), _START_TIMEOUT_S)
        except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as e:
            await producer.stop()
            raise ConnectError(
                "AGENTLOG_KAFKA_BOOTSTRAP",
                self._settings.kafka_bootstrap,
                f"{type(e).__name__}: {e}",
                "Check that the broker runs and the address is host:port of a listener.",
            ) from e
        self._producer = producer

    async def stop(self) -> None:
        """Flush pending sends and disconnect; idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def codec(self) -> AvroCodec:
        """The codec this producer encodes with."""
        return self._codec

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("EventProducer is not started; use `async with` or await start()")
        return self._producer

    async def send(
        self, topic: str, event: Event, *, key: str | None = None, headers: Headers | None = None
    ) -> RecordMetadata:
        """Append one event and wait until the broker acknowledged it (acks=all)."""
        future = await self.enqueue(topic, event, key=key, headers=headers)
        return await future

    async def enqueue(
        self, topic: str, event: Event, *, key: str | None = None, headers: Headers | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one event for sending and return the future of its acknowledgement.

        Pipelining: enqueue many, then await the futures (in order per partition).
        The key defaults to the envelope key (workflow id or resource).
        """
        envelope = event.envelope
        record_key = (key if key is not None else envelope.key).encode()
        all_headers = list(headers) if headers else []
        if envelope.traceparent and not any(k == TRACEPARENT_HEADER for k, _ in all_headers):
            all_headers.append((TRACEPARENT_HEADER, envelope.traceparent.encode("ascii")))
        future: asyncio.Future[RecordMetadata] = await self._require().send(
            topic, self._codec.encode(event), key=record_key, headers=all_headers or None
        )
        return future

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue already-encoded bytes (dead letters, redrives, tests of poison input)."""
        future: asyncio.Future[RecordMetadata] = await self._require().send(
            topic, value, key=key, headers=headers or None, partition=partition
        )
        return future

    async def flush(self) -> None:
        """Wait until everything queued so far is acknowledged or failed."""
        await self._require().flush()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of a topic (fetching metadata if needed)."""
        parts: Any = await self._require().partitions_for(topic)
        return set(parts or ())
