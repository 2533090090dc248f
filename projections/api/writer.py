"""The API's only writes: events produced to Kafka (start, cancel, signal, redrive)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentlog.client import AgentlogClient
from agentlog.errors import AgentlogError, ConfigError, ConnectError
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer


class KafkaUnavailable(AgentlogError):
    """The broker cannot be reached (or is not configured); writes answer 503."""

    retriable = True


class Writer:
    """A lazily started client and producer; failures to reach Kafka become KafkaUnavailable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AgentlogClient | None = None
        self._producer: EventProducer | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> AgentlogClient:
        """The started client (requests: start, cancel, signal)."""
        async with self._lock:
            if self._client is None:
                client = AgentlogClient(self.settings, source="agentlog-api")
                await _start(client)
                self._client = client
            return self._client

    async def producer(self) -> EventProducer:
        """The started producer (raw redrives)."""
        async with self._lock:
            if self._producer is None:
                producer = EventProducer(self.settings, client_id="agentlog-api")
                await _start(producer)
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        """Stop what was started; idempotent."""
        client, self._client = self._client, None
        producer, self._producer = self._producer, None
        if client is not None:
            await client.stop()
        if producer is not None:
            await producer.stop()


async def _start(component: Any) -> None:
    try:
        await component.start()
    except (ConfigError, ConnectError) as e:
        raise KafkaUnavailable(f"Kafka is unavailable for writes: {e}") from e
