"""What comes in: the fetch loop of a pool, its back-pressure, and rebalances.

One loop polls the pool's consumer into the bounded priority buffer and wakes
the workers. It pauses the partitions while the buffer is full, or while too
many answers wait for their acknowledgement (paused partitions are still
polled, which keeps the member in its group). A ``TaskRequested`` becomes a
job (or is attached to the same task here already, or settled at once when it
finished or was cancelled here); a ``TaskCancelled`` drops its task if it
waits, and stops it if it runs (:mod:`.cancel`). The offset tracker learns
what was fetched, and how far fetching went past records the consumer
dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime.buffer import PriorityBuffer
from agentlog.agents.runtime.cancel import RunningHandlers
from agentlog.agents.runtime.commits import Committer
from agentlog.agents.runtime.consumer import TaskConsumer
from agentlog.agents.runtime.errors import cancelled_failure
from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.jobs import Admission, Job, JobIndex
from agentlog.agents.runtime.offsets import OffsetTracker
from agentlog.agents.runtime.respond import Counts, Responder
from agentlog.schemas.events import TaskCancelled, TaskRequested, TaskUsage
from agentlog.streams.consumer import Delivered

logger = logging.getLogger(__name__)

#: Answers awaiting acknowledgement, per buffered task allowed, before fetching pauses.
UNACKED_PER_BUFFERED = 4

_ADMISSION_NOTE = {
    Admission.ATTACHED: "already here",
    Admission.FINISHED: "finished already",
    Admission.CANCELLED: "cancelled already",
}


class Intake:
    """Fetches tasks into the buffer, with back-pressure; handles cancellations and rebalances.

    Args:
        agent_id: for log lines.
        buffer: the waiting jobs.
        jobs: the jobs held, by task id.
        tracker: the offsets fetched and settled.
        handlers: the running handlers (a ``TaskCancelled`` stops one).
        responder: answers the jobs a ``TaskCancelled`` dropped; its answers in
            flight count against the room.
        counts: the pool's counters.
        wake: called after a poll that buffered jobs (the workers take them).
        stopping: set when the pool stops: the loop ends, fetched records are left.
        poll_timeout_ms: longest wait of one poll, and of one pause.
    """

    def __init__(
        self,
        agent_id: str,
        buffer: PriorityBuffer[Job[TopicPartition]],
        *,
        jobs: JobIndex[TopicPartition],
        tracker: OffsetTracker[TopicPartition],
        handlers: RunningHandlers,
        responder: Responder,
        counts: Counts,
        wake: Callable[[], None],
        stopping: asyncio.Event,
        poll_timeout_ms: int,
    ) -> None:
        self.agent_id = agent_id
        self.consumer: TaskConsumer | None = None  # set when the pool starts
        self.committer: Committer | None = None
        self._buffer = buffer
        self._jobs = jobs
        self._tracker = tracker
        self._handlers = handlers
        self._responder = responder
        self._answers = responder.answers
        self._counts = counts
        self._wake = wake
        self._stopping = stopping
        self._poll_timeout_ms = poll_timeout_ms
        self._max_unacked = UNACKED_PER_BUFFERED * buffer.capacity
        self._room = asyncio.Event()  # set when the buffer and the answers in flight have room
        self._paused = False
        self._want_room = False  # paused, and room not signalled yet
        self._partitions: dict[int, TopicPartition] = {}  # of the tasks topic, made once
        self._dropped: list[Job[TopicPartition]] = []  # cancelled while waiting: to answer

    # -- back-pressure ----------------------------------------------------------------

    def has_room(self) -> bool:
        """True when the buffer is not full and not too many answers are unacknowledged."""
        return not self._buffer.full and len(self._answers) < self._max_unacked

    def room_changed(self) -> None:
        """A job left the buffer or an answer was acknowledged: resume fetching if paused."""
        if self._want_room and self.has_room():
            self._want_room = False
            self._room.set()

    def release(self) -> None:
        """End a pause at once (the pool stops)."""
        self._want_room = False
        self._room.set()

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
        self._want_room = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), self._poll_timeout_ms / 1000)
        self._want_room = False

    # -- fetching -----------------------------------------------------------------------

    async def run(self) -> None:
        """The fetch loop, until ``stopping`` is set."""
        consumer = self.consumer
        if consumer is None:
            raise RuntimeError(f"agent pool {self.agent_id} is not started; use `async with`")
        poll_timeout_ms = self._poll_timeout_ms
        stopping, tracker = self._stopping, self._tracker
        while not stopping.is_set():
            timeout_ms = poll_timeout_ms
            if not self.has_room():
                await self._until_room(consumer)
                timeout_ms = 0  # poll all the same (paused: nothing comes) to stay in the group
            elif self._paused:
                consumer.resume_all()
                self._paused = False
            before = consumer.positions()
            batch = await consumer.poll(timeout_ms=timeout_ms)
            if stopping.is_set():
                return  # fetched after stop(): not accepted, not committed, redelivered
            if batch:
                for delivered in batch:
                    self._accept(delivered)
                self._wake()
                if self._dropped:
                    self._answer_dropped()
            for tp, position in consumer.positions().items():
                if before.get(tp) != position:
                    tracker.advance(tp, position)

    def _accept(self, delivered: Delivered) -> None:
        task = delivered.event
        if isinstance(task, TaskCancelled):
            # never pending in the tracker: settled as soon as fetching passes it
            self._cancel(task)
            return
        if not isinstance(task, TaskRequested):  # the consumer dead-letters other types
            return
        tp, offset = self._partitions.get(delivered.partition), delivered.offset
        if tp is None or tp.topic != delivered.topic:
            tp = self._partitions[delivered.partition] = delivered.tp
        self._tracker.fetched(tp, offset)
        admission, job = self._jobs.admit(task, tp, offset)
        if job is not None and admission is Admission.NEW:
            self._buffer.push(job, task.priority)
            return
        if admission is not Admission.ATTACHED:  # finished or cancelled: settle, never run
            self._tracker.done(tp, offset)
        if admission is not Admission.CANCELLED:
            self._counts.duplicates += 1
        logger.info(
            "agent %s got task %s (workflow %s step %s) at %s[%s]@%s: %s, not run (again)",
            self.agent_id,
            task.task_id,
            task.workflow_id,
            task.step,
            tp.topic,
            tp.partition,
            offset,
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
        dropped, self._dropped = self._dropped, []
        for job in dropped:
            failure = cancelled_failure(job.cancelled or "")
            self._responder.answer(job, Outcome(None, failure, TaskUsage()))

    # -- rebalances -----------------------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """Track the new partitions from their committed offsets."""
        self._tracker.assign(partitions)
        logger.info("agent %s assigned %s", self.agent_id, _names(partitions))

    async def revoked(self, partitions: set[TopicPartition]) -> None:
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
        if self.committer is not None:
            await self.committer.commit(partitions)  # the dropped ones stay pending: uncommitted
        self._tracker.revoke(partitions)


def _names(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)) or "nothing"
