"""What the connected broker can do, asked of the broker rather than assumed."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.transaction import InitProducerIdRequest

from agentlog.errors import ConnectError
from agentlog.settings import Settings

logger = logging.getLogger(__name__)

_TIMEOUT_S = 30.0
#: bootstrap -> answer; a process asks each cluster once.
_IDEMPOTENCE: dict[str, bool] = {}
#: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
_COORDINATOR_NOT_READY = frozenset({14, 15, 16})


async def supports_idempotence(settings: Settings) -> bool:
    """True if the broker grants a producer id (``InitProducerId``), the basis of idempotence.

    Apache Kafka and Redpanda answer with an id; Tansu answers with an error.
    The answer is cached per bootstrap address for the life of the process.

    Raises:
        ConnectError: the broker cannot be reached (names AGENTLOG_KAFKA_BOOTSTRAP).
    """
    bootstrap = settings.kafka_bootstrap or ""
    cached = _IDEMPOTENCE.get(bootstrap)
    if cached is not None:
        return cached
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.source}-probe",
        request_timeout_ms=int(_TIMEOUT_S * 1000),
        **settings.kafka_client_options(),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), _TIMEOUT_S)
        answer = await asyncio.wait_for(_ask_for_producer_id(client), _TIMEOUT_S)
    except (KafkaConnectionError, OSError, TimeoutError) as e:
        raise ConnectError(
            "AGENTLOG_KAFKA_BOOTSTRAP",
            bootstrap,
            f"{type(e).__name__}: {e}",
            "Check that the broker runs and the address is host:port of a listener.",
        ) from e
    except KafkaError as e:  # e.g. the API is not supported at all
        logger.debug("InitProducerId probe failed on %s: %r", bootstrap, e)
        answer = False
    finally:
        await client.close()
    _IDEMPOTENCE[bootstrap] = answer
    logger.info(
        "broker %s idempotent producer: %s (consumers' fetch wait: %s ms unless set)",
        bootstrap,
        "yes" if answer else "no",
        LONG_FETCH_WAIT_MS if answer else SHORT_FETCH_WAIT_MS,
    )
    return answer


async def _ask_for_producer_id(client: AIOKafkaClient) -> bool:
    # A fresh Apache Kafka answers "coordinator loading / not available" until its
    # transaction-state topic exists: that is a "wait", not a "no".
    while True:
        node = client.get_random_node()
        request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
        response = await client.send(node, request)
        if response.error_code not in _COORDINATOR_NOT_READY:
            return bool(response.error_code == 0)
        await asyncio.sleep(0.2)


#: The fetch wait on a broker that answers a fetch only when the wait runs out
#: (Tansu): every hop may cost this much, so it stays short.
SHORT_FETCH_WAIT_MS = 5
#: The fetch wait on a broker that answers a fetch as soon as data arrives (Apache
#: Kafka): there it only bounds how often an idle consumer asks. Measured on Apache
#: Kafka (docs/benchmarks.md, "Fetch wait"): three idle consumers at 5 ms used a
#: quarter of a core and the broker another quarter, at 100 ms 3% and ~0%, with the
#: same round-trip latency. Not longer: after a seek, a consumer's next fetch to a
#: partition's broker waits for the one in flight.
LONG_FETCH_WAIT_MS = 100


async def fetch_wait_ms(settings: Settings) -> int:
    """The consumers' fetch wait: ``AGENTLOG_FETCH_MAX_WAIT_MS`` if set, else per broker.

    A broker that grants idempotent producer ids (Apache Kafka) is taken to
    answer fetches as data arrives and gets :data:`LONG_FETCH_WAIT_MS`; one
    that does not (Tansu, which also answers a fetch only when its wait runs
    out) gets :data:`SHORT_FETCH_WAIT_MS`. The two went together on both
    brokers measured; for a broker where they do not, set the variable (one
    that needs the short wait and got the long one shows ~50 ms more per hop).

    Raises:
        ConnectError: the broker cannot be reached (names AGENTLOG_KAFKA_BOOTSTRAP).
    """
    if settings.fetch_max_wait_ms is not None:
        return settings.fetch_max_wait_ms
    wait = LONG_FETCH_WAIT_MS if await supports_idempotence(settings) else SHORT_FETCH_WAIT_MS
    logger.debug(
        "consumers of %s fetch with a %s ms wait (AGENTLOG_FETCH_MAX_WAIT_MS sets another)",
        settings.kafka_bootstrap,
        wait,
    )
    return wait
