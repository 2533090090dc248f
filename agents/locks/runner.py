"""The lock manager: the pure lock core driven by Kafka.

One consumer group (``<prefix>.locks``) reads the locks topic; the owner of
partition ``p`` is the single writer of every resource whose home partition
is ``p`` (murmur2 of the resource, Kafka's default partitioner). Per batch:
decide (:mod:`.inputs`), forward misrouted commands, append the decisions to
their partition with an explicit partition number, one record batch per
input, and wait for the acks, then commit the input offsets. Requesters learn
the outcome by reading the partition (their request id), so a grant in the
log reaches its requester whatever happens to the manager afterwards. See
``docs/locks.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TypeVar

from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.errors import AgentlogError
from agentlog.schemas.events import LockGranted, utc_now
from agentlog.settings import Settings
from agentlog.streams.consumer import Delivered, EventConsumer
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import DEADLETTER, LOCKS, RESPONSES, ensure_topics
from agentlog.tuning import raise_gc_threshold

from .errors import LockManagerError
from .inputs import BatchDecider, Outcome
from .log import DecisionWriter, read_partitions
from .partition import PartitionState
from .relay import copy_to_responses, for_workflows, held_grants, track_grant
from .state import LockState

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LockManagerConfig:
    """How one lock manager runs.

    Attributes:
        group_id: consumer group; None means ``<topic prefix>.locks``.
        max_batch: records per poll.
        idle_poll_ms: the longest a poll waits (bounds stop latency and timer lateness).
        batch_bytes: bytes of whole decisions packed into one record batch.
    """

    group_id: str | None = None
    max_batch: int = 500
    idle_poll_ms: int = 250
    batch_bytes: int = 256 * 1024


@dataclass(slots=True)
class LockManagerStats:
    """Counters since start (for logs and tests)."""

    batches: int = 0
    inputs: int = 0
    decided: int = 0
    decisions: int = 0
    skipped: int = 0
    forwarded: int = 0
    copied: int = 0
    recoveries: int = 0
    recovered_resources: int = 0
    commit_failures: int = 0


class LockManager:
    """Decides lock requests for the partitions the group gives this member.

    Use as ``async with LockManager(settings) as manager:``; a failure of the
    background loop is raised out of the ``async with`` (and by :meth:`wait`).
    :meth:`start` and :meth:`stop` are idempotent.

    Args:
        settings: broker, topic prefix, partitions of created topics.
        config: tuning; defaults are fine for production.
        clock: the manager's clock (aware UTC): grant times, lease expiries, wait deadlines.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        config: LockManagerConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or LockManagerConfig()
        self.group_id = self.config.group_id or settings.topic("locks")
        self.stats = LockManagerStats()
        self._clock = clock or utc_now
        self._topic = settings.topic(LOCKS.name)
        self._responses = settings.topic(RESPONSES.name)
        self._partitions = 0
        self._lock = asyncio.Lock()
        self._parts: dict[int, PartitionState] = {}
        self._pending: set[int] = set()
        self._epoch = 0
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._ready = asyncio.Event()
        self._failure: BaseException | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None
        self._producer: EventProducer | None = None
        self._consumer: EventConsumer | None = None
        self._decider: BatchDecider | None = None
        self._writer: DecisionWriter | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, join the group and start the loop; idempotent."""
        if self._task is not None:
            return
        if self._done.is_set():
            raise RuntimeError("this lock manager was stopped; create a new one to run again")
        raise_gc_threshold(self.settings.gc_threshold)
        async with contextlib.AsyncExitStack() as stack:
            await ensure_topics(self.settings, [LOCKS, RESPONSES, DEADLETTER])
            producer = await stack.enter_async_context(
                EventProducer(self.settings, client_id=f"{self.settings.source}-locks")
            )
            self._partitions = len(await producer.partitions_for(self._topic))
            self._decider = BatchDecider(self.home, self._clock)
            self._writer = DecisionWriter(
                producer, self._topic, max_batch_bytes=self.config.batch_bytes
            )
            consumer = EventConsumer(
                self.settings,
                [self._topic],
                group_id=self.group_id,
                dead_letters=DeadLetterWriter(self.settings, producer),
                rebalance=_Rebalance(self),
                max_records=self.config.max_batch,
                client_id=f"{self.settings.source}-locks",
            )
            await stack.enter_async_context(consumer)
            self._producer, self._consumer = producer, consumer
            self._stack = stack.pop_all()
        self._task = asyncio.create_task(self._run(), name=f"lock manager {self.group_id}")
        logger.info(
            "lock manager started: group %s, topic %s, %s partitions",
            self.group_id,
            self._topic,
            self._partitions,
        )

    async def stop(self) -> None:
        """Finish the current batch, leave the group and disconnect; idempotent."""
        self._stopping.set()
        task = self._task
        if task is not None:
            await asyncio.wait([task])
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
            logger.info("lock manager stopped: %s", self.stats)
        self._done.set()

    async def __aenter__(self) -> LockManager:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if et is None:
            self.raise_failure()

    async def wait(self) -> None:
        """Until the manager stops; raises the failure that stopped it, if any."""
        await self._done.wait()
        self.raise_failure()

    async def wait_ready(self) -> None:
        """Until the group assigned partitions and their state is recovered.

        Bound it with ``asyncio.timeout``: a new consumer group may take seconds to form.

        Raises:
            LockManagerError: the manager failed meanwhile.
        """
        ready = asyncio.ensure_future(self._ready.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait([ready, done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            done.cancel()
            await asyncio.wait([ready, done])
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise the failure that stopped the loop, if any."""
        failure = self._failure
        if failure is None:
            return
        if isinstance(failure, AgentlogError):
            raise failure
        raise LockManagerError(
            f"lock manager {self.group_id} stopped: {type(failure).__name__}: {failure}; "
            "restart it: it resumes every lock from the log"
        ) from failure

    # -- introspection ---------------------------------------------------------------

    def home(self, resource: str) -> int:
        """The partition of the locks topic that ``resource`` lives on."""
        return partition_for(resource, self._partitions)

    @property
    def owned_partitions(self) -> frozenset[int]:
        """The partitions this member decides for now."""
        return frozenset(self._parts)

    def state(self, resource: str) -> LockState | None:
        """The in-memory state of a resource on an owned partition."""
        part = self._parts.get(self.home(resource)) if self._partitions else None
        return part.resources.get(resource) if part is not None else None

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._step()
        except Exception as e:
            self._failure = e
            logger.exception("lock manager %s failed", self.group_id)
        finally:
            self._done.set()

    async def _step(self) -> None:
        consumer = self._require(self._consumer)
        epoch = self._epoch
        before = consumer.positions()
        deliveries = await consumer.poll(timeout_ms=self._poll_timeout_ms())
        after = consumer.positions()
        if self._failure is not None:
            raise self._failure  # from a rebalance callback
        async with self._lock:
            if epoch != self._epoch:
                await self._rewind(deliveries)
                return
            if self._pending:
                await self._recover(set(self._pending))
            moved = {tp: offset for tp, offset in after.items() if before.get(tp) != offset}
            await self._process(deliveries, moved)

    async def _process(self, deliveries: list[Delivered], moved: dict[TopicPartition, int]) -> None:
        decider = self._require(self._decider)
        outcome = Outcome()
        decider.decide(self._parts, deliveries, outcome)
        decider.fire_timers(self._parts, outcome)
        # 1. commands that belong to another partition, forwarded and acknowledged first:
        #    once later decisions are in the log, a redelivery skips everything before them
        await self._forward(outcome.forward)
        # 2. the decisions, acknowledged
        writer = self._require(self._writer)
        await asyncio.gather(*(writer.append(p, groups) for p, groups in outcome.groups.items()))
        # 3. decisions about workflow steps' requests, copied to their workflow's responses
        copies = for_workflows(g for groups in outcome.groups.values() for g in groups)
        await copy_to_responses(self._require(self._producer), self._responses, copies)
        self.stats.copied += len(copies)
        # 4. then the input offsets
        await self._commit(moved)
        self._count(outcome)

    async def _forward(self, items: list[tuple[Delivered, int]]) -> None:
        """Re-produce commands that arrived on a partition other than their resource's."""
        if not items:
            return
        producer = self._require(self._producer)
        futures: list[asyncio.Future[RecordMetadata]] = []
        for delivered, home in items:
            event = delivered.event
            resource = str(getattr(event, "resource", ""))
            logger.warning(
                "%s for resource %s arrived on %s[%s] but the resource lives on partition %s "
                "(murmur2 of its id): forwarding it; produce with the murmur2 partitioner "
                "(librdkafka: partitioner=murmur2_random) and the resource as key",
                event.envelope.type,
                resource,
                delivered.topic,
                delivered.partition,
                home,
            )
            futures.append(
                await producer.send_raw(
                    delivered.topic,
                    producer.codec.encode(event),
                    key=resource.encode("utf-8"),
                    headers=list(delivered.headers),
                    partition=home,
                )
            )
        await asyncio.gather(*futures)
        self.stats.forwarded += len(items)

    async def _commit(self, moved: dict[TopicPartition, int]) -> None:
        offsets = {tp: off for tp, off in moved.items() if tp.partition in self._parts}
        if not offsets:
            return
        try:
            await self._require(self._consumer).commit(offsets)
        except (CommitFailedError, IllegalStateError) as e:
            # the decisions are in the log: the next owner re-reads these inputs and
            # finds them decided
            self.stats.commit_failures += 1
            logger.warning("offsets not committed (a rebalance is under way): %s", e)

    async def _rewind(self, deliveries: list[Delivered]) -> None:
        """A rebalance ran during the poll: re-read its records under the new assignment."""
        consumer = self._require(self._consumer)
        assigned = consumer.assignment()
        first: dict[TopicPartition, int] = {}
        for delivered in deliveries:
            tp = delivered.tp
            first[tp] = min(first.get(tp, delivered.offset), delivered.offset)
        for tp, offset in first.items():
            if tp in assigned:
                await consumer.seek(tp, offset)

    def _poll_timeout_ms(self) -> int:
        if self._pending:
            return 0
        due = [d for part in self._parts.values() if (d := part.timers.next_due()) is not None]
        limit = self.config.idle_poll_ms
        if not due:
            return limit
        wait_ms = (min(due) - self._clock()).total_seconds() * 1000
        return max(0, min(limit, math.ceil(wait_ms)))

    def _count(self, outcome: Outcome) -> None:
        stats = self.stats
        if outcome.inputs:
            stats.batches += 1
        stats.inputs += outcome.inputs
        stats.decided += outcome.decided
        stats.decisions += outcome.events
        stats.skipped += outcome.skipped

    # -- partitions ----------------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        owned = {tp.partition for tp in assigned if tp.topic == self._topic}
        async with self._lock:
            self._epoch += 1
            for p in set(self._parts) - owned:
                self._parts.pop(p, None)
            self._pending = owned - set(self._parts)
            if not self._pending:
                self._ready.set()
        logger.info("group %s assigned partitions %s", self.group_id, sorted(owned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        numbers = {tp.partition for tp in revoked}
        async with self._lock:  # waits for the batch in progress: it appends and commits
            self._epoch += 1
            for p in numbers:
                self._parts.pop(p, None)
            self._pending -= numbers
        if numbers:
            logger.info("group %s revoked partitions %s", self.group_id, sorted(numbers))

    async def _recover(self, partitions: set[int]) -> None:
        """Fold newly owned partitions from their first offset and arm their timers."""
        started = time.monotonic()
        parts = {p: PartitionState(p, self.home) for p in partitions}
        last_grant: dict[int, dict[str, LockGranted]] = {p: {} for p in partitions}
        async for p, offset, event in read_partitions(
            self.settings,
            self._topic,
            sorted(parts),
            client_id=f"{self.settings.source}-locks-recovery",
        ):
            parts[p].fold(event, offset)
            track_grant(last_grant[p], event)
        # a crash between appending a grant and copying it to responses loses the copy
        grants = [
            grant
            for p, part in parts.items()
            for grant in held_grants(part.resources, last_grant[p])
        ]
        await copy_to_responses(self._require(self._producer), self._responses, grants)
        self.stats.copied += len(grants)
        for p, part in parts.items():
            part.recovered()
            self._parts[p] = part
        self._pending -= partitions
        self.stats.recoveries += 1
        self.stats.recovered_resources += sum(len(part.resources) for part in parts.values())
        self._ready.set()
        logger.info(
            "recovered partitions %s in %.2f s: %s records, %s resources (%s held, %s waiting)",
            sorted(parts),
            time.monotonic() - started,
            sum(part.events for part in parts.values()),
            sum(len(part.resources) for part in parts.values()),
            sum(part.held for part in parts.values()),
            sum(part.waiting for part in parts.values()),
        )

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None:
            raise RuntimeError("the lock manager is not started; use `async with` or start()")
        return value


class _Rebalance:
    """Adapts group rebalances to the runner; records failures (aiokafka only logs them)."""

    def __init__(self, runner: LockManager) -> None:
        self._runner = runner

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        try:
            await self._runner._on_assigned(partitions)
        except Exception as e:
            self._runner._failure = e
            logger.exception("handling the assignment of %s failed", sorted(partitions))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        try:
            await self._runner._on_revoked(partitions)
        except Exception as e:
            self._runner._failure = e
            logger.exception("handling the revocation of %s failed", sorted(partitions))
