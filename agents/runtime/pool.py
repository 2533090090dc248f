"""``AgentPool``: runs one :class:`Agent` in this process against ``tasks.<kind>``.

One fetch loop polls the consumer group ``<prefix>.agents.<kind>`` into a
bounded priority buffer (pausing the partitions while it is full, or while
too many answers wait for their acknowledgement). Up to N tasks run at once,
the highest-priority waiting one first, each in an asyncio task of its own:
run the handler, produce the ``TaskCompleted``/``TaskFailed`` to
``responses`` and move on; the task's offset is settled when the broker
acknowledges the answer (acks=all, :mod:`.answers`). A timer commits per
partition up to the lowest task not settled (:mod:`.offsets`,
:mod:`.commits`), off the fetch and answer paths, so whatever a crash
interrupts is delivered again, and nothing is lost.

A ``TaskCancelled`` on the same topic (behind its ``TaskRequested``) drops the
task if it waits, or stops it if it runs (:mod:`.cancel`); either way the task
is answered once with ``TaskFailed`` of kind ``cancelled``.
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

from agentlog.agents.runtime.answers import Answers
from agentlog.agents.runtime.buffer import PriorityBuffer
from agentlog.agents.runtime.cancel import DEFAULT_CANCEL_GRACE, RunningHandlers
from agentlog.agents.runtime.commits import Committer
from agentlog.agents.runtime.consumer import TaskConsumer, group_id_for
from agentlog.agents.runtime.context import TaskContext
from agentlog.agents.runtime.definition import Agent
from agentlog.agents.runtime.errors import OUTPUT_TOO_LARGE, AgentPoolError, cancelled_failure
from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.jobs import Admission, Job, JobIndex
from agentlog.agents.runtime.offsets import OffsetTracker
from agentlog.agents.runtime.presence import deregistered, heartbeat, new_agent_id, registered
from agentlog.agents.runtime.respond import TOO_LARGE, enqueue_answer, too_large
from agentlog.errors import ConfigError
from agentlog.schemas.events import Event, TaskCancelled, TaskProgress, TaskRequested, TaskUsage
from agentlog.settings import Settings
from agentlog.streams.consumer import Delivered
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import AGENTS, RESPONSES, tasks_topic

logger = logging.getLogger(__name__)

_FETCH_STOP_TIMEOUT_S = 5.0
_CANCEL_TIMEOUT_S = 5.0
#: Longest wait for the last answers' acknowledgements on stop (the producer's request timeout
#: is 30 s: by then each is acknowledged or failed).
_ACK_WAIT_S = 35.0
#: Answers awaiting acknowledgement, per buffered task allowed, before fetching pauses.
_UNACKED_PER_BUFFERED = 4

_Answer = tuple[Job[TopicPartition], Outcome]
_T = TypeVar("_T")
_ADMISSION_NOTE = {
    Admission.ATTACHED: "already here",
    Admission.FINISHED: "finished already",
    Admission.CANCELLED: "cancelled already",
}


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
        if self.concurrency < 1:
            raise ConfigError(
                "concurrency",
                self.concurrency,
                "must be at least 1",
                "Pass --concurrency 1 or more.",
            )
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
        self._poll_timeout_ms = poll_timeout_ms
        if commit_interval <= 0:
            raise ConfigError(
                "commit_interval",
                commit_interval,
                "must be more than 0 seconds",
                "Pass a commit interval such as 0.2.",
            )
        self._commit_interval = commit_interval
        self._buffer: PriorityBuffer[Job[TopicPartition]] = PriorityBuffer(
            max_buffered or max(2 * self.concurrency, 8)
        )
        self._jobs: JobIndex[TopicPartition] = JobIndex()
        self._handlers = RunningHandlers(cancel_grace)
        self._dropped: list[Job[TopicPartition]] = []  # cancelled while waiting: to answer
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._running: dict[asyncio.Task[None], Job[TopicPartition]] = {}
        self._answers: Answers[_Answer] = Answers(self._produce, self._acked, self._answer_failed)
        self._max_unacked = _UNACKED_PER_BUFFERED * self._buffer.capacity
        self._room = asyncio.Event()  # set when the buffer and the answers in flight have room
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._lock = asyncio.Lock()
        self._committer: Committer | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._commits: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._state = "new"
        self._paused = False
        self._failure: BaseException | None = None
        self._counts = dict.fromkeys(
            ("completed", "failed", "duplicates", "handed_back", "cancelled"), 0
        )

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
                await producer.send(self._agents_topic, self._registered())
                undo.pop_all()
            self._producer, self._consumer = producer, consumer
            self._committer = Committer(
                consumer, self._tracker, self._commit_interval, self.agent_id
            )
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

    def _spawn(self) -> None:
        committer = self._require(self._committer)
        self._fetcher = asyncio.create_task(self._fetch_loop(), name=f"{self.agent_id}-fetch")
        self._heartbeat = asyncio.create_task(
            self._heartbeat_loop(), name=f"{self.agent_id}-heartbeat"
        )
        self._commits = asyncio.create_task(
            committer.run(self._stopping), name=f"{self.agent_id}-commit"
        )
        self._sender = asyncio.create_task(self._answers.run(), name=f"{self.agent_id}-answer")
        for task in (self._fetcher, self._heartbeat, self._commits, self._sender):
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
        self._stopping.set()
        self._room.set()
        await _finish(self._fetcher, _FETCH_STOP_TIMEOUT_S)
        if self._running:
            logger.info(
                "agent %s stopping: %s running task(s) get %.1f s to finish",
                self.agent_id,
                len(self._running),
                grace,
            )
        unfinished = await self._drain_running(grace)
        waiting = self._buffer.clear()
        for job in waiting:
            self._jobs.drop(job)
        unacked = await self._drain_answers()
        handed_back = len(waiting) + len(unfinished) + len(unacked)
        self._counts["handed_back"] += handed_back
        await _finish(self._heartbeat, 0)
        await _finish(self._commits, _FETCH_STOP_TIMEOUT_S)
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
            self._counts["completed"],
            self._counts["failed"],
            handed_back,
            len(waiting),
            len(unfinished),
            len(unacked),
        )

    async def _drain_running(self, grace: float) -> list[Job[TopicPartition]]:
        """Wait up to ``grace`` for the running tasks; cancel what still runs (handed back)."""
        if not self._running:
            return []
        _, pending = await asyncio.wait(list(self._running), timeout=max(grace, 0.0))
        unfinished = [job for task, job in self._running.items() if task in pending]
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

    async def _drain_answers(self) -> list[_Answer]:
        """Wait for the last answers' acknowledgements, so that their offsets can be committed.

        Returns:
            the answers still unacknowledged: their tasks are not settled, so they
            are delivered again (and answered twice, which the orchestrator ignores).
        """
        sending = self._sender is not None and not self._sender.done()
        unacked = await self._answers.drain(_ACK_WAIT_S if sending else 0.0)
        await _finish(self._sender, 0)
        for job, _ in unacked:
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
        self._room.set()
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
        return PoolStats(
            buffered=len(self._buffer),
            in_flight=len(self._running),
            unacknowledged=len(self._answers),
            **self._counts,
        )

    # -- rebalances (RebalanceHandler) -------------------------------------------------

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Track the new partitions from their committed offsets."""
        self._tracker.assign(partitions)
        logger.info("agent %s assigned %s", self.agent_id, _names(partitions))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Commit what is settled; drop the waiting tasks of ``partitions`` (for the new owner)."""
        if not partitions:
            return
        dropped = {id(job) for job in self._jobs.release(partitions)}
        if dropped:
            self._buffer.remove_if(lambda job: id(job) in dropped)
        logger.info(
            "agent %s revoked %s; %s waiting task(s) left to the new owner",
            self.agent_id,
            _names(partitions),
            len(dropped),
        )
        if self._committer is not None:
            await self._committer.commit(partitions)  # the dropped ones stay pending: uncommitted
        self._tracker.revoke(partitions)

    # -- fetching -----------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        consumer = self._require(self._consumer)
        poll_timeout_ms = self._poll_timeout_ms
        while not self._stopping.is_set():
            timeout_ms = poll_timeout_ms
            if not self._has_room():
                await self._until_room(consumer)
                timeout_ms = 0  # poll all the same (paused: nothing comes) to stay in the group
            elif self._paused:
                consumer.resume_all()
                self._paused = False
            before = consumer.positions()
            batch = await consumer.poll(timeout_ms=timeout_ms)
            if self._stopping.is_set():
                return  # fetched after stop(): not accepted, not committed, redelivered
            for delivered in batch:
                self._accept(delivered)
            self._dispatch()
            if self._dropped:
                self._answer_dropped()
            for tp, position in consumer.positions().items():
                if before.get(tp) != position:
                    self._tracker.advance(tp, position)

    def _has_room(self) -> bool:
        return not self._buffer.full and len(self._answers) < self._max_unacked

    async def _until_room(self, consumer: TaskConsumer) -> None:
        """Pause fetching until the buffer (or the answers in flight) has room, for one poll
        timeout at most."""
        consumer.pause_all()  # every time: a rebalance may have added unpaused partitions
        if not self._paused:
            logger.debug(
                "agent %s full (%s waiting, %s answers unacknowledged): fetching paused",
                self.agent_id,
                len(self._buffer),
                len(self._answers),
            )
        self._paused = True
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), self._poll_timeout_ms / 1000)

    def _accept(self, delivered: Delivered) -> None:
        task = delivered.event
        tp = delivered.tp
        if isinstance(task, TaskCancelled):
            # never pending in the tracker: settled as soon as fetching passes it
            self._cancel(task)
            return
        if not isinstance(task, TaskRequested):  # the consumer dead-letters other types
            return
        self._tracker.fetched(tp, delivered.offset)
        admission, job = self._jobs.admit(task, tp, delivered.offset)
        if admission is Admission.NEW and job is not None:
            self._buffer.push(job, task.priority)
            return
        if admission is not Admission.ATTACHED:  # finished or cancelled: settle, never run
            self._tracker.done(tp, delivered.offset)
        if admission is not Admission.CANCELLED:
            self._counts["duplicates"] += 1
        logger.info(
            "agent %s got task %s (workflow %s step %s) at %s[%s]@%s: %s, not run (again)",
            self.agent_id,
            task.task_id,
            task.workflow_id,
            task.step,
            tp.topic,
            tp.partition,
            delivered.offset,
            _ADMISSION_NOTE[admission],
        )

    def _cancel(self, cancelled: TaskCancelled) -> None:
        """Drop the task if it waits (answered by :meth:`_answer_dropped`), stop it if it runs."""
        job = self._jobs.cancel(cancelled.task_id, cancelled.reason)
        where = "not here"
        if job is not None and not job.started:
            self._buffer.remove_if(lambda waiting: waiting is job)
            self._dropped.append(job)
            where = "waiting: dropped"
        elif job is not None and self._handlers.cancel(cancelled.task_id, cancelled.reason):
            where = f"running: ctx.cancelled set, cancelled in {self._handlers.grace:.1f} s"
        logger.info(
            "agent %s got TaskCancelled for task %s (workflow %s step %s), %s: %s",
            self.agent_id,
            cancelled.task_id,
            cancelled.workflow_id,
            cancelled.step,
            where,
            cancelled.reason,
        )

    def _answer_dropped(self) -> None:
        """Answer the waiting tasks a TaskCancelled dropped (settled once acknowledged)."""
        while self._dropped:
            job = self._dropped.pop(0)
            failure = cancelled_failure(job.cancelled or "")
            self._answers.put((job, Outcome(None, failure, TaskUsage())))

    # -- running tasks --------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start waiting tasks, the highest priority first, while fewer than N run."""
        buffer, running = self._buffer, self._running
        while buffer and len(running) < self.concurrency and not self._stopping.is_set():
            job = buffer.pop()
            job.started = True
            task = asyncio.create_task(self._execute(job))
            running[task] = job
            task.add_done_callback(self._executed)
        if self._has_room():
            self._room.set()

    def _executed(self, task: asyncio.Task[None]) -> None:
        """Done-callback of a task's asyncio task: start the next waiting one."""
        del self._running[task]
        self._watch(task)
        self._dispatch()

    async def _execute(self, job: Job[TopicPartition]) -> None:
        ctx = TaskContext(job.task, agent_id=self.agent_id, progress_sink=self._publish_progress)
        # answered by the sender; the job is settled when its answer is acknowledged
        self._answers.put((job, await self._handlers.run(self.agent.handler, ctx)))

    async def _produce(self, answer: _Answer) -> tuple[_Answer, asyncio.Future[Any]]:
        """Produce ``answer`` (the sender of :class:`Answers` calls it, one at a time)."""
        job, outcome = answer
        outcome, future = await enqueue_answer(
            self._require(self._producer), self._responses, job.task, outcome, self.agent_id
        )
        return (job, outcome), future

    def _acked(self, answer: _Answer) -> None:
        """``job``'s answer is acknowledged: settle its deliveries (committable now), count it."""
        job, outcome = answer
        tracker = self._tracker
        for tp, offset in self._jobs.finish(job):
            tracker.done(tp, offset)
        if self._paused and self._has_room():
            self._room.set()
        task, failure = job.task, outcome.failure
        if failure is None:
            self._counts["completed"] += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "agent %s completed task %s (workflow %s step %s) in %.1f ms",
                    self.agent_id,
                    task.task_id,
                    task.workflow_id,
                    task.step,
                    outcome.usage.latency_ms,
                )
            return
        self._counts["failed"] += 1
        if job.cancelled is not None:
            self._counts["cancelled"] += 1
        logger.info(
            "agent %s failed task %s (workflow %s step %s attempt %s): %s%s: %s",
            self.agent_id,
            task.task_id,
            task.workflow_id,
            task.step,
            task.attempt,
            failure.kind,
            "" if failure.retryable else " (terminal)",
            failure.message,
        )

    def _answer_failed(self, answer: _Answer, error: BaseException) -> None:
        """The answer could not be published: the task stays unsettled; the pool stops.

        Except when the broker refused it as too large: then it is answered with
        ``output_too_large`` instead (it would fail the same way on every redelivery).
        """
        job, outcome = answer
        refused = outcome.failure is None or outcome.failure.kind != OUTPUT_TOO_LARGE
        if isinstance(error, TOO_LARGE) and refused:
            self._answers.put((job, too_large(outcome, error)))
            return
        self._fail(error, f"answering task {job.task.task_id} (workflow {job.task.workflow_id})")

    async def _publish_progress(self, report: TaskProgress) -> None:
        await self._require(self._producer).send(self._responses, report, key=report.workflow_id)

    async def _heartbeat_loop(self) -> None:
        producer = self._require(self._producer)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._heartbeat_interval)
                return
            event = heartbeat(
                self.agent_id,
                self.kind,
                in_flight=len(self._running),
                capacity=self.concurrency,
                source=self.agent_id,
            )
            await producer.send(self._agents_topic, event)

    # -- helpers ----------------------------------------------------------------------------

    def _registered(self) -> Event:
        return registered(
            self.agent_id,
            self.kind,
            concurrency=self.concurrency,
            version=self.agent.version,
            source=self.agent_id,
        )

    def _require(self, thing: _T | None) -> _T:
        if thing is None:
            raise RuntimeError(f"agent pool {self.agent_id} is not started; use `async with`")
        return thing


async def _finish(task: asyncio.Task[Any] | None, wait_s: float) -> None:
    """Let ``task`` end by itself within ``wait_s`` seconds, else cancel it; never raises."""
    if task is None or task.done():
        return
    if wait_s > 0:
        await asyncio.wait([task], timeout=wait_s)
    if not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_CANCEL_TIMEOUT_S)


def _names(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)) or "nothing"
