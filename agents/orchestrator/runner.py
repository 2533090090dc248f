"""The orchestrator runner: the pure core driven by Kafka.

One consumer group (``<prefix>.orchestrator``) reads ``requests`` +
``responses`` with the range assignor, so a member owns partition ``p`` of
both (and writes partition ``p`` of the journal): single writer per workflow.
Per batch: decide (:mod:`.inputs`); then, in a background *flush* while the
loop already polls and decides the next batch: append the decisions to the
journal and wait for the acks, send the tasks and lock commands, wait for
their acks and only then queue the batch's input offsets for commit. Flushes
run in batch order: one appends only after the previous one's journal ack and
sends (so the journal holds whole batches in order, and nothing after a failed
append); at most ``max_settling`` are pending. Offsets are committed one
commit at a time, each carrying the newest offsets acknowledged so far
(:mod:`.offsets`), so commits never go backwards and never hold up a batch.
See ``docs/orchestrator.md`` for the guarantees and failure modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import RecordMetadata, TopicPartition

from agentlog.errors import AgentlogError
from agentlog.schemas.events import (
    LockReleaseRequested,
    LockRequested,
    TaskCancelled,
    TaskRequested,
    utc_now,
)
from agentlog.settings import Settings
from agentlog.streams.consumer import Delivered, EventConsumer
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS, JOURNAL, LOCKS, REQUESTS, RESPONSES, ensure_topics
from agentlog.tuning import raise_gc_threshold
from agentlog.workflow import (
    TaskStatus,
    WorkflowRegistry,
    WorkflowState,
    cancellation_for,
    cancellations_to_publish,
    lock_requests_to_publish,
    releases_to_publish,
    tasks_to_publish,
)

from .breaker import CircuitBreakers, circuit_event
from .inputs import BatchDecider, Outcome
from .journal import JournalWriter, read_journal
from .kafka import assignor_names, pause
from .offsets import OffsetCommitter
from .partition import PartitionState
from .publish import TaskPublisher
from .routing import co_owned

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class OrchestratorError(AgentlogError):
    """The orchestrator stopped because of a failure; restarting it resumes from the journal."""

    retriable = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorConfig:
    """How one orchestrator instance runs.

    Attributes:
        group_id: consumer group; None means ``<topic prefix>.orchestrator``.
        max_batch: records per poll.
        idle_poll_ms: the longest a poll waits (bounds stop latency).
        breaker_threshold: consecutive failures that open an agent kind's
            circuit breaker; 0 disables breakers.
        breaker_cooldown_ms: how long an open breaker holds tasks before a probe.
        journal_batch_bytes: bytes of whole decisions packed into one record batch.
        max_settling: batches whose journal append and task acks may be pending
            while the next batches are decided (1 waits for each batch).
        recovery_cancel_window_ms: on recovery, workflows that ended this recently
            (by the runner's clock) have their open tasks' ``TaskCancelled``
            published again, in case a crash came between the journal and them.
    """

    group_id: str | None = None
    max_batch: int = 500
    idle_poll_ms: int = 250
    breaker_threshold: int = 5
    breaker_cooldown_ms: int = 30_000
    journal_batch_bytes: int = 256 * 1024
    recovery_cancel_window_ms: int = 3_600_000
    max_settling: int = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class _Batch:
    """One decided batch, waiting to be written (see :meth:`Orchestrator._flush`).

    Attributes:
        outcome: the decisions, lock commands and inputs to forward.
        tasks: the tasks to publish, chosen when the batch was decided.
        cancellations: ``TaskCancelled`` of the open tasks of workflows it ended.
        offsets: the input offsets to commit once everything is acknowledged.
        now: the decision time (the breakers' clock for the tasks).
    """

    outcome: Outcome
    tasks: list[tuple[int, TaskRequested]]
    cancellations: list[TaskCancelled]
    offsets: dict[TopicPartition, int]
    now: datetime


@dataclass(slots=True)
class RunnerStats:
    """Counters since start (for logs and tests)."""

    batches: int = 0
    inputs: int = 0
    decided: int = 0
    journal_events: int = 0
    lock_commands: int = 0
    circuit_changes: int = 0
    forwarded: int = 0
    recoveries: int = 0
    recovered_workflows: int = 0
    republished: int = 0
    republished_cancellations: int = 0
    commits: int = 0
    commit_failures: int = 0


class Orchestrator:
    """Runs the workflow core for the partitions the group gives this member.

    Use as ``async with Orchestrator(settings, registry) as orchestrator:``; a
    failure of the background loop is raised out of the ``async with`` (and by
    :meth:`wait`). :meth:`start` and :meth:`stop` are idempotent.

    Args:
        settings: broker, topic prefix, partitions of created topics.
        registry: the workflow definitions requests may name.
        config: tuning; defaults are fine for production.
        clock: the runner's clock (aware UTC): decision times and timers.
    """

    def __init__(
        self,
        settings: Settings,
        registry: WorkflowRegistry,
        *,
        config: OrchestratorConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.config = config or OrchestratorConfig()
        self.group_id = self.config.group_id or settings.topic("orchestrator")
        self.stats = RunnerStats()
        self._clock = clock or utc_now
        self._requests = settings.topic(REQUESTS.name)
        self._responses = settings.topic(RESPONSES.name)
        self._journal_topic = settings.topic(JOURNAL.name)
        self._locks = settings.topic(LOCKS.name)
        self._agents = settings.topic(AGENTS.name)
        self._breakers = CircuitBreakers(
            self.config.breaker_threshold, timedelta(milliseconds=self.config.breaker_cooldown_ms)
        )
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
        self._journal: JournalWriter | None = None
        self._publisher: TaskPublisher | None = None
        self._settling: deque[asyncio.Task[None]] = deque()
        self._committer = OffsetCommitter(self._commit)
        #: resolved once the newest flush appended and sent (True) or gave up (False)
        self._sent: asyncio.Future[bool] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, join the group and start the loop; idempotent."""
        if self._task is not None:
            return
        if self._done.is_set():
            raise RuntimeError("this orchestrator was stopped; create a new one to run again")
        raise_gc_threshold(self.settings.gc_threshold)
        async with contextlib.AsyncExitStack() as stack:
            await ensure_topics(self.settings)
            producer = await stack.enter_async_context(
                EventProducer(self.settings, client_id=f"{self.settings.source}-orchestrator")
            )
            partitions = len(await producer.partitions_for(self._requests))
            self._decider = BatchDecider(self.registry, partitions, self._clock)
            self._journal = JournalWriter(
                producer, self._journal_topic, max_batch_bytes=self.config.journal_batch_bytes
            )
            self._publisher = TaskPublisher(
                self.settings, producer, self._breakers, self._is_current
            )
            consumer = EventConsumer(
                self.settings,
                [self._requests, self._responses],
                group_id=self.group_id,
                dead_letters=DeadLetterWriter(self.settings, producer),
                rebalance=_Rebalance(self),
                max_records=self.config.max_batch,
                client_id=f"{self.settings.source}-orchestrator",
                # partition p of every co-partitioned topic to the same member
                assignors=(RangePartitionAssignor,),
            )
            await stack.enter_async_context(consumer)
            self._producer, self._consumer = producer, consumer
            self._stack = stack.pop_all()
        self._task = asyncio.create_task(self._run(), name=f"orchestrator {self.group_id}")
        logger.info(
            "orchestrator started: group %s, %s partitions, %s definitions",
            self.group_id,
            partitions,
            len(self.registry),
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
            logger.info("orchestrator stopped: %s", self.stats)
        self._done.set()

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if et is None:
            self.raise_failure()

    async def wait(self) -> None:
        """Until the orchestrator stops; raises the failure that stopped it, if any."""
        await self._done.wait()
        self.raise_failure()

    async def wait_ready(self) -> None:
        """Until the group assigned partitions and their state is recovered.

        Bound it with ``asyncio.timeout``: a new consumer group may take seconds to form.

        Raises:
            OrchestratorError: the orchestrator failed meanwhile.
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
        raise OrchestratorError(
            f"orchestrator {self.group_id} stopped: {type(failure).__name__}: {failure}; "
            "restart it: it resumes every workflow from the journal"
        ) from failure

    # -- introspection ---------------------------------------------------------------

    @property
    def owned_partitions(self) -> frozenset[int]:
        """The partitions this member processes now."""
        return frozenset(self._parts)

    def state(self, workflow_id: str) -> WorkflowState | None:
        """The in-memory state of a workflow on an owned partition."""
        for part in self._parts.values():
            found = part.states.get(workflow_id)
            if found is not None:
                return found
        return None

    @property
    def assignors(self) -> tuple[str, ...]:
        """The partition assignors this member offers its group (``("range",)``)."""
        return assignor_names(self._require(self._consumer))

    @property
    def publisher(self) -> TaskPublisher:
        """The task publisher (held tasks, counters)."""
        return self._require(self._publisher)

    @property
    def breakers(self) -> CircuitBreakers:
        """The per-agent-kind circuit breakers."""
        return self._breakers

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                await self._step()
            await self._drain_settling()
        except Exception as e:
            self._failure = e
            logger.exception("orchestrator %s failed", self.group_id)
        finally:
            for task in self._settling:  # after a failure: acks nobody waits for any more
                task.cancel()
            if self._settling:
                await asyncio.wait(self._settling)
            self._settling.clear()
            await self._committer.close()
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
        now = self._clock()
        for kind, healthy in outcome.health:
            self._breakers.record(kind, ok=healthy, now=now)
        batch = _Batch(
            outcome=outcome,
            tasks=decider.tasks(self._parts, outcome),
            cancellations=[cancellation_for(s, reason) for s, reason in outcome.ended],
            offsets=self._committable(moved),
            now=now,
        )
        await self._flush(batch)
        await self._record_circuits()

    async def _flush(self, batch: _Batch) -> None:
        """Write ``batch`` in the background, in order after every earlier one.

        1. the journal, acknowledged (and inputs that belong to another partition),
        2. then the tasks it scheduled, the lock commands and the cancellations of
           the workflows it ended; 3. once they are acknowledged, the input offsets.
        Meanwhile the loop decides the next batch on the state these decisions
        left in memory; if an append fails, the orchestrator stops before any
        later batch is written, and whoever owns the partitions next folds the
        journal, which holds whole batches in order.
        """
        self._raise_settle_failure()
        outcome = batch.outcome
        publisher = self._require(self._publisher)
        if not (
            outcome.journal
            or outcome.forward
            or outcome.locks
            or batch.tasks
            or batch.cancellations
            or batch.offsets
            or publisher.holding
        ):
            return
        previous = self._settling[-1] if self._settling else None
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._write(batch, previous, self._sent, sent))
        self._settling.append(task)
        self._sent = sent
        # a poll with records buffered returns without suspending: let the flushes' I/O
        # (acks, the sender) run once per batch, not only when max_settling makes us wait
        await asyncio.sleep(0)
        await self._drain_settling(keep=max(0, self.config.max_settling - 1))

    async def _write(
        self,
        batch: _Batch,
        previous: asyncio.Task[None] | None,
        previous_sent: asyncio.Future[bool] | None,
        sent: asyncio.Future[bool],
    ) -> None:
        try:
            if previous_sent is not None and not await previous_sent:
                return  # the previous batch failed (its task raises it): write nothing after it
            journal = self._require(self._journal)
            outcome = batch.outcome
            await asyncio.gather(
                *(journal.append(p, groups) for p, groups in outcome.journal.items()),
                self._forward(outcome.forward),
            )
            self._count(outcome)
            publisher = self._require(self._publisher)
            futures = await publisher.publish_nowait(batch.tasks, batch.now)
            futures += await self._enqueue_locks(outcome.locks)
            futures += await publisher.cancel_nowait(batch.cancellations)
        except BaseException:
            sent.set_result(False)
            raise
        sent.set_result(True)
        if previous is not None:
            await asyncio.wait([previous])  # offsets in batch order; its failure raises itself
        if futures:
            await asyncio.gather(*futures)
        self._committer.add(batch.offsets)  # committed with the next commit, not waited for

    async def _forward(self, items: list[tuple[Delivered, int]]) -> None:
        """Re-produce inputs that arrived on a partition other than their workflow's."""
        if not items:
            return
        producer = self._require(self._producer)
        futures: list[asyncio.Future[RecordMetadata]] = []
        for delivered, home in items:
            event = delivered.event
            logger.warning(
                "%s of workflow %s arrived on %s[%s] but the workflow lives on partition %s "
                "(murmur2 of its id): forwarding it; produce with the murmur2 partitioner "
                "(librdkafka: partitioner=murmur2_random) and the workflow id as key",
                event.envelope.type,
                event.envelope.key,
                delivered.topic,
                delivered.partition,
                home,
            )
            futures.append(
                await producer.send_raw(
                    delivered.topic,
                    producer.codec.encode(event),
                    key=getattr(event, "workflow_id", "").encode("utf-8"),
                    headers=list(delivered.headers),
                    partition=home,
                )
            )
        await asyncio.gather(*futures)
        self.stats.forwarded += len(items)

    async def _enqueue_locks(
        self, commands: Sequence[LockRequested | LockReleaseRequested]
    ) -> list[asyncio.Future[Any]]:
        """Send lock requests and releases to the locks topic (key: resource); their acks."""
        if not commands:
            return []
        producer = self._require(self._producer)
        self.stats.lock_commands += len(commands)
        return [await producer.enqueue_batch(self._locks, commands)]

    def _raise_settle_failure(self) -> None:
        self._committer.raise_failure()
        for task in self._settling:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _drain_settling(self, keep: int = 0) -> None:
        """Wait, oldest first, until at most ``keep`` settles are pending and none is done.

        ``keep=0`` (before a rebalance or a stop) waits for every one, and for the
        commit of their offsets.
        """
        while len(self._settling) > keep or (self._settling and self._settling[0].done()):
            await asyncio.wait([self._settling[0]])
            self._raise_settle_failure()
            self._settling.popleft()
        if not keep:
            await self._committer.drain()

    def _committable(self, moved: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        return {
            tp: offset
            for tp, offset in moved.items()
            if tp.partition in self._parts and tp.topic in (self._requests, self._responses)
        }

    async def _record_circuits(self) -> None:
        """Publish the breakers' state changes as ``AgentKindCircuitChanged`` (agents topic)."""
        changes = self._breakers.drain()
        if not changes:
            return
        producer = self._require(self._producer)
        futures = [
            await producer.enqueue(self._agents, circuit_event(change, self.settings.source))
            for change in changes
        ]
        await asyncio.gather(*futures)
        self.stats.circuit_changes += len(changes)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        self.stats.commits += 1
        try:
            await self._require(self._consumer).commit(offsets)
        except (CommitFailedError, IllegalStateError) as e:
            # the journal has the decisions: whoever owns the partitions next re-reads
            # these inputs and the core ignores them
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
        if self._publisher is not None and self._publisher.holding:
            change = self._breakers.next_change()
            if change is not None:
                due.append(change)
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
        stats.journal_events += outcome.events

    # -- partitions ----------------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        ownership = co_owned(assigned, self._requests, self._responses)
        if ownership.partial:
            logger.error(
                "partitions %s are assigned on only one of %s / %s: not processing them. "
                "Every member of group %s must use the range assignor, and the topics "
                "must have equal partition counts",
                sorted(ownership.partial),
                self._requests,
                self._responses,
                self.group_id,
            )
            pause(
                self._require(self._consumer),
                (tp for tp in assigned if tp.partition in ownership.partial),
            )
        async with self._lock:
            self._epoch += 1
            self._drop(set(self._parts) - ownership.owned)
            self._pending = set(ownership.owned) - set(self._parts)
            if not self._pending:
                self._ready.set()
        logger.info("group %s assigned partitions %s", self.group_id, sorted(ownership.owned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        numbers = {tp.partition for tp in revoked}
        async with self._lock:  # waits for the batch in progress: it appends, publishes, commits
            await self._drain_settling()  # commit what was decided while we own the partitions
            self._epoch += 1
            self._drop(numbers & set(self._parts))
            self._pending -= numbers
        if numbers:
            logger.info("group %s revoked partitions %s", self.group_id, sorted(numbers))

    def _drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)
        if partitions and self._publisher is not None:
            self._publisher.drop_partitions(partitions)

    async def _recover(self, partitions: set[int]) -> None:
        """Fold the journal of newly owned partitions, then re-publish their open tasks."""
        started = time.monotonic()
        parts = {p: PartitionState(p) for p in partitions}
        async for p, event in read_journal(self.settings, self._journal_topic, sorted(parts)):
            parts[p].fold(event)
        tasks: list[tuple[int, TaskRequested]] = []
        cancellations: list[TaskCancelled] = []
        locks: list[LockRequested | LockReleaseRequested] = []
        now = self._clock()
        since = now - timedelta(milliseconds=self.config.recovery_cancel_window_ms)
        for p, part in parts.items():
            part.arm_timers()
            self._parts[p] = part
            for state in part.states.values():
                tasks.extend((p, task) for task in tasks_to_publish(state))
                cancellations.extend(cancellations_to_publish(state, ended_since=since))
                locks.extend(releases_to_publish(state, ended_since=since))
                locks.extend(lock_requests_to_publish(state))
        self._pending -= partitions
        # a crash between journal and tasks loses nothing: agents drop what they already got,
        # the lock manager ignores requests it knows and releases of leases that ended
        publisher = self._require(self._publisher)
        lock_acks = await self._enqueue_locks(locks)
        await publisher.publish(tasks, now)
        if lock_acks:
            await asyncio.gather(*lock_acks)
        await publisher.cancel(cancellations)
        stats = self.stats
        stats.recoveries += 1
        stats.recovered_workflows += sum(len(part.states) for part in parts.values())
        stats.republished += len(tasks)
        stats.republished_cancellations += len(cancellations)
        self._ready.set()
        logger.info(
            "recovered partitions %s in %.2f s: %s journal events, %s workflows (%s running), "
            "%s open tasks and %s recent cancellations re-published",
            sorted(parts),
            time.monotonic() - started,
            sum(part.journal_events for part in parts.values()),
            sum(len(part.states) for part in parts.values()),
            sum(part.running for part in parts.values()),
            len(tasks),
            len(cancellations),
        )

    def _is_current(self, partition: int, task: TaskRequested) -> bool:
        part = self._parts.get(partition)
        state = part.states.get(task.workflow_id) if part is not None else None
        if state is None or not state.running:
            return False
        step = state.steps.get(task.step)
        found = step.task(task.task_id) if step is not None else None
        return found is not None and found.status is TaskStatus.RUNNING

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None:
            raise RuntimeError("the orchestrator is not started; use `async with` or start()")
        return value


class _Rebalance:
    """Adapts group rebalances to the runner; records failures (aiokafka only logs them)."""

    def __init__(self, runner: Orchestrator) -> None:
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
