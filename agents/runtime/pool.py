"""``AgentPool``: runs one :class:`Agent` in this process against ``tasks.<kind>``.

The pool is the facade; each part of the work has a module of its own:

- :mod:`.intake`: one fetch loop polls the consumer group
  ``<prefix>.agents.<kind>`` into a bounded priority buffer (:mod:`.buffer`),
  pausing the partitions while it is full, or while too many answers wait for
  their acknowledgement; ``TaskCancelled`` events and rebalances;
- :mod:`.workers`: up to N tasks run at once, the highest-priority waiting one
  first, in long-lived worker tasks (:mod:`.cancel` stops a handler);
- :mod:`.respond` and :mod:`.answers`: one sender produces the
  ``TaskCompleted``/``TaskFailed`` answers to ``responses`` in batches; a
  task's offset is settled when the broker acknowledges its answer (acks=all);
- :mod:`.commits`: a timer commits per partition up to the lowest task not
  settled (:mod:`.offsets`), off the fetch and answer paths, so whatever a
  crash interrupts is delivered again, and nothing is lost;
- :mod:`.presence`: registration and heartbeats on the ``agents`` topic.

A ``TaskCancelled`` on the same topic (behind its ``TaskRequested``) drops the
task if it waits, or stops it if it runs; either way the task is answered once
with ``TaskFailed`` of kind ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from agentlog.agents.runtime.buffer import PriorityBuffer
from agentlog.agents.runtime.cancel import DEFAULT_CANCEL_GRACE, RunningHandlers
from agentlog.agents.runtime.commits import Committer
from agentlog.agents.runtime.consumer import TaskConsumer, group_id_for
from agentlog.agents.runtime.definition import Agent
from agentlog.agents.runtime.errors import AgentPoolError
from agentlog.agents.runtime.intake import Intake
from agentlog.agents.runtime.jobs import Job, JobIndex
from agentlog.agents.runtime.offsets import OffsetTracker
from agentlog.agents.runtime.presence import (
    deregistered,
    heartbeat,
    new_agent_id,
    registered,
    send_heartbeats,
)
from agentlog.agents.runtime.respond import Counts, Responder
from agentlog.agents.runtime.workers import Workers
from agentlog.errors import ConfigError
from agentlog.schemas.events import AgentHeartbeat, TaskProgress
from agentlog.settings import Settings
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS, RESPONSES, tasks_topic
from agentlog.tuning import raise_gc_threshold

__all__ = ["AgentPool", "PoolStats"]

logger = logging.getLogger(__name__)

_FETCH_STOP_TIMEOUT_S = 5.0
_CANCEL_TIMEOUT_S = 5.0
#: Longest wait for the last answers' acknowledgements on stop (the producer's request timeout
#: is 30 s: by then each is acknowledged or failed).
_ACK_WAIT_S = 35.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters of one pool since it started."""

    buffered: int
    in_flight: int
    completed: int
    failed: int
    duplicates: int
    handed_back: int
    cancelled: int = 0
    unacknowledged: int = 0  # answered, the broker's acknowledgement not back yet


class AgentPool:
    """Runs one agent kind in this process: fetch, run with bounded concurrency, answer, commit.

    Use as ``async with AgentPool(agent, settings) as pool: await pool.wait()``.
    ``start()`` and ``stop()`` are idempotent. A failure in the background
    (the broker unreachable for long, a response that cannot be published)
    stops the pool; :meth:`wait` and leaving the ``async with`` raise it as
    :class:`AgentPoolError`. Handler errors are not failures of the pool: they
    become ``TaskFailed`` events.
    """

    def __init__(
        self,
        agent: Agent,
        settings: Settings,
        *,
        producer: EventProducer | None = None,
        concurrency: int | None = None,
        max_buffered: int | None = None,
        heartbeat_interval: float = 5.0,
        shutdown_grace: float = 30.0,
        agent_id: str | None = None,
        poll_timeout_ms: int = 100,
        commit_interval: float = 0.2,
        cancel_grace: float = DEFAULT_CANCEL_GRACE,
    ) -> None:
        """Args:
        agent: the agent kind and handler to run.
        settings: broker, topic prefix.
        producer: a started producer to share (not stopped by the pool); None makes one.
        concurrency: tasks run at once; defaults to ``agent.concurrency``.
        max_buffered: fetched tasks waiting to start before fetching pauses;
            defaults to ``max(2 * concurrency, 8)``. Priorities order these.
        heartbeat_interval: seconds between ``AgentHeartbeat`` events.
        shutdown_grace: seconds running tasks get to finish on :meth:`stop`.
        agent_id: defaults to ``<kind>-<host>-<pid>-<8 hex>``.
        poll_timeout_ms: longest wait of one poll (bounds the reaction to stop()).
        commit_interval: seconds between offset commits (of the tasks whose answers
            were acknowledged since); a crash redelivers at most that many seconds
            of answered tasks, besides the unfinished ones.
        cancel_grace: seconds a handler whose task was cancelled (``TaskCancelled``)
            gets after ``ctx.cancelled`` is set, before it is cancelled.
        """
        self.agent = agent
        self.kind = agent.kind
        self.concurrency = concurrency or agent.concurrency
        _check_config(self.concurrency, commit_interval)
        self.agent_id = agent_id or new_agent_id(agent.kind)
        self.topic = settings.topic(tasks_topic(agent.kind).name)
        self.group_id = group_id_for(settings, agent.kind)
        self._settings = settings
        self._shared_producer = producer
        self._producer: EventProducer | None = None
        self._consumer: TaskConsumer | None = None
        self._responses = settings.topic(RESPONSES.name)
        self._agents_topic = settings.topic(AGENTS.name)
        self._heartbeat_interval = heartbeat_interval
        self._grace = shutdown_grace
        self._commit_interval = commit_interval
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._lock = asyncio.Lock()
        self._state = "new"
        self._failure: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []  # fetch, heartbeat, commit, answer
        self._committer: Committer | None = None
        self._counts = Counts()
        self._assemble(max_buffered or max(2 * self.concurrency, 8), poll_timeout_ms, cancel_grace)

    def _assemble(self, max_buffered: int, poll_timeout_ms: int, cancel_grace: float) -> None:
        """Make the parts (not started): buffer, jobs, offsets, answers, workers, intake."""
        self._buffer: PriorityBuffer[Job[TopicPartition]] = PriorityBuffer(max_buffered)
        self._jobs: JobIndex[TopicPartition] = JobIndex()
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._handlers = RunningHandlers(cancel_grace)
        self._responder = Responder(
            self._responses,
            self.agent_id,
            jobs=self._jobs,
            tracker=self._tracker,
            counts=self._counts,
            fail=self._fail,
        )
        self._answers = self._responder.answers
        self._workers = Workers(
            self.concurrency,
            self._buffer,
            handler=self.agent.handler,
            handlers=self._handlers,
            took=self._took,
            finished=self._responder.answer,
            stopping=self._stopping,
            agent_id=self.agent_id,
            progress_sink=self._publish_progress,
            watch=self._watch,
        )
        self._intake = Intake(
            self.agent_id,
            self._buffer,
            jobs=self._jobs,
            tracker=self._tracker,
            handlers=self._handlers,
            responder=self._responder,
            counts=self._counts,
            wake=self._workers.wake,
            stopping=self._stopping,
            poll_timeout_ms=poll_timeout_ms,
        )
        self._responder.settled = self._intake.room_changed

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, join the group, announce ``AgentRegistered``, start fetching; idempotent.

        Raises:
            ConnectError: the broker cannot be reached (names AGENTLOG_KAFKA_BOOTSTRAP).
            RuntimeError: the pool was stopped (make a new one).
        """
        async with self._lock:
            if self._state == "running":
                return
            if self._state != "new":
                raise RuntimeError(
                    f"agent pool {self.agent_id} was stopped; create a new AgentPool"
                )
            raise_gc_threshold(self._settings.gc_threshold)
            await self._connect()
            self._spawn()
            self._state = "running"
        logger.info(
            "agent %s started: kind %s, group %s, concurrency %s, buffer %s",
            self.agent_id,
            self.kind,
            self.group_id,
            self.concurrency,
            self._buffer.capacity,
        )

    async def _connect(self) -> None:
        """Start the producer (unless shared) and the consumer, and announce the agent."""
        async with contextlib.AsyncExitStack() as undo:
            producer = self._shared_producer
            if producer is None:
                producer = EventProducer(self._settings, client_id=self.agent_id)
                await producer.start()
                undo.push_async_callback(producer.stop)
            consumer = TaskConsumer(
                self._settings,
                [self.topic],
                group_id=self.group_id,
                dead_letters=DeadLetterWriter(self._settings, producer),
                rebalance=self,
                max_records=self._buffer.capacity,
                client_id=self.agent_id,
            )
            await consumer.start()
            undo.push_async_callback(consumer.stop)
            event = registered(
                self.agent_id,
                self.kind,
                concurrency=self.concurrency,
                version=self.agent.version,
                source=self.agent_id,
            )
            await producer.send(self._agents_topic, event)
            undo.pop_all()
        self._producer, self._consumer = producer, consumer
        self._committer = Committer(consumer, self._tracker, self._commit_interval, self.agent_id)
        self._responder.producer = producer
        self._intake.consumer, self._intake.committer = consumer, self._committer

    def _spawn(self) -> None:
        name, producer = self.agent_id, self._require(self._producer)
        committer = self._require(self._committer)
        self._workers.start()
        beats = send_heartbeats(
            producer, self._agents_topic, self._beat, self._heartbeat_interval, self._stopping
        )
        self._tasks = [
            asyncio.create_task(self._intake.run(), name=f"{name}-fetch"),
            asyncio.create_task(beats, name=f"{name}-heartbeat"),
            asyncio.create_task(committer.run(self._stopping), name=f"{name}-commit"),
            asyncio.create_task(self._answers.run(), name=f"{name}-answer"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._watch)

    async def stop(self, reason: str = "stopped", *, grace: float | None = None) -> None:
        """Stop fetching, let running tasks finish, hand back the rest, deregister; idempotent.

        Waiting tasks are not started and running ones still running after
        ``grace`` seconds are cancelled: none of them is committed, so the
        group delivers them again (to another agent, or to this one restarted).

        Args:
            reason: recorded in ``AgentDeregistered.reason``.
            grace: seconds for running tasks; defaults to ``shutdown_grace``.
        """
        async with self._lock:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                self._done.set()
                return
            self._state = "stopping"
            try:
                await self._shutdown(reason, self._grace if grace is None else grace)
            finally:
                self._state = "stopped"
                self._done.set()

    async def _shutdown(self, reason: str, grace: float) -> None:
        fetcher, heartbeats, commits, sender = self._tasks
        self._stopping.set()
        self._intake.release()
        await _finish(fetcher, _FETCH_STOP_TIMEOUT_S)
        if len(self._workers):
            logger.info(
                "agent %s stopping: %s running task(s) get %.1f s to finish",
                self.agent_id,
                len(self._workers),
                grace,
            )
        unfinished = await self._drain_running(grace)
        waiting = self._buffer.clear()
        for job in waiting:
            self._jobs.drop(job)
        unacked = await self._drain_answers(sender)
        handed_back = len(waiting) + len(unfinished) + len(unacked)
        self._counts.handed_back += handed_back
        await _finish(heartbeats, 0)
        await _finish(commits, _FETCH_STOP_TIMEOUT_S)
        if self._committer is not None:
            await self._committer.commit()
        failed = self._failure is not None
        await self._announce_stop(f"failed: {self._failure}" if failed else reason)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._shared_producer is None and self._producer is not None:
            await self._producer.stop()
        logger.info(
            "agent %s stopped (%s): %s completed, %s failed, %s handed back (%s waiting, %s "
            "interrupted, %s answered without acknowledgement)",
            self.agent_id,
            reason,
            self._counts.completed,
            self._counts.failed,
            handed_back,
            len(waiting),
            len(unfinished),
            len(unacked),
        )

    async def _drain_running(self, grace: float) -> list[Job[TopicPartition]]:
        """Wait up to ``grace`` for the running tasks; cancel what still runs (handed back)."""
        unfinished, pending = await self._workers.drain(grace)
        for ctx in self._handlers.contexts():
            ctx.cancelled.set()
        for job in unfinished:
            logger.warning(
                "agent %s hands back task %s (workflow %s step %s): still running after the "
                "%.1f s grace period",
                self.agent_id,
                job.task.task_id,
                job.task.workflow_id,
                job.task.step,
                grace,
            )
            self._jobs.drop(job)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_CANCEL_TIMEOUT_S)
        return unfinished

    async def _drain_answers(self, sender: asyncio.Task[None]) -> list[Job[TopicPartition]]:
        """Wait for the last answers' acknowledgements, so that their offsets can be committed.

        Returns:
            the jobs whose answers are still unacknowledged: they are not settled, so
            they are delivered again (and answered twice, which the orchestrator ignores).
        """
        unacked = await self._answers.drain(0.0 if sender.done() else _ACK_WAIT_S)
        await _finish(sender, 0)
        for job in unacked:
            logger.warning(
                "agent %s hands back task %s (workflow %s step %s): its answer was not "
                "acknowledged within %.0f s",
                self.agent_id,
                job.task.task_id,
                job.task.workflow_id,
                job.task.step,
                _ACK_WAIT_S,
            )
            self._jobs.drop(job)
        return unacked

    async def _announce_stop(self, reason: str) -> None:
        if self._producer is None:
            return
        try:
            event = deregistered(self.agent_id, self.kind, reason=reason, source=self.agent_id)
            await self._producer.send(self._agents_topic, event)
        except (KafkaError, OSError, RuntimeError) as e:
            logger.warning("agent %s could not publish AgentDeregistered: %s", self.agent_id, e)

    async def wait(self) -> None:
        """Until the pool stops; raise :class:`AgentPoolError` if it failed in the background."""
        await self._done.wait()
        self._raise_failure()

    async def __aenter__(self) -> AgentPool:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop("stopped" if e is None else f"error: {type(e).__name__}")
        if e is None:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise AgentPoolError(
                f"agent pool {self.kind!r} ({self.agent_id}) failed: "
                f"{type(self._failure).__name__}: {self._failure}. Its unfinished tasks were "
                "not committed and will be delivered again; check the broker at "
                f"AGENTLOG_KAFKA_BOOTSTRAP={self._settings.kafka_bootstrap!r} "
                "and restart the agent."
            ) from self._failure

    def _watch(self, task: asyncio.Task[None]) -> None:
        """Done-callback of every background task: a crash stops the pool (never silently)."""
        if task.cancelled() or (error := task.exception()) is None:
            return
        self._fail(error, task.get_name())

    def _fail(self, error: BaseException, where: str) -> None:
        if self._failure is None:
            self._failure = error
            logger.error("agent %s failed in %s; stopping", self.agent_id, where, exc_info=error)
        self._stopping.set()
        self._intake.release()
        self._done.set()

    # -- state ------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        """The background failure that stopped the pool, if any."""
        return self._failure

    @property
    def running(self) -> bool:
        """True between a successful start and the beginning of stop."""
        return self._state == "running" and not self._stopping.is_set()

    @property
    def stats(self) -> PoolStats:
        """Current counters."""
        counts = self._counts
        return PoolStats(
            buffered=len(self._buffer),
            in_flight=len(self._workers),
            completed=counts.completed,
            failed=counts.failed,
            duplicates=counts.duplicates,
            handed_back=counts.handed_back,
            cancelled=counts.cancelled,
            unacknowledged=len(self._answers),
        )

    # -- rebalances (RebalanceHandler) -------------------------------------------------

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Track the new partitions from their committed offsets."""
        self._intake.assigned(partitions)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Commit what is settled; drop the waiting tasks of ``partitions`` (for the new owner)."""
        await self._intake.revoked(partitions)

    # -- what the parts call ----------------------------------------------------------

    def _took(self) -> None:
        """A worker took a job from the buffer: fetching may resume."""
        self._intake.room_changed()

    async def _publish_progress(self, report: TaskProgress) -> None:
        await self._require(self._producer).send(self._responses, report, key=report.workflow_id)

    def _beat(self) -> AgentHeartbeat:
        return heartbeat(
            self.agent_id,
            self.kind,
            in_flight=len(self._workers),
            capacity=self.concurrency,
            source=self.agent_id,
        )

    def _require(self, thing: _T | None) -> _T:
        if thing is None:
            raise RuntimeError(f"agent pool {self.agent_id} is not started; use `async with`")
        return thing


def _check_config(concurrency: int, commit_interval: float) -> None:
    if concurrency < 1:
        raise ConfigError(
            "concurrency", concurrency, "must be at least 1", "Pass --concurrency 1 or more."
        )
    if commit_interval <= 0:
        raise ConfigError(
            "commit_interval",
            commit_interval,
            "must be more than 0 seconds",
            "Pass a commit interval such as 0.2.",
        )


async def _finish(task: asyncio.Task[Any] | None, wait_s: float) -> None:
    """Let ``task`` end by itself within ``wait_s`` seconds, else cancel it; never raises."""
    if task is None or task.done():
        return
    if wait_s > 0:
        await asyncio.wait([task], timeout=wait_s)
    if not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_CANCEL_TIMEOUT_S)
