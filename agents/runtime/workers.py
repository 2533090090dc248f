"""Running the waiting tasks: at most N at once, the highest priority first.

Each running task has an asyncio task of its own, but not a new one per task:
up to N long-lived worker tasks each take the highest-priority waiting job,
run its handler (:class:`~.cancel.RunningHandlers`, which may cancel the
worker to stop a handler, and absorbs that), hand the outcome on, and take
the next. A task's cost is then the handler's, not an asyncio task's creation,
scheduling and done-callback each.

Workers start on demand and wait (idle) when nothing waits; one more is woken
only when a job is taken and others still wait, so that handlers that never
suspend run back to back in one worker, and handlers that do suspend spread
over up to N workers.

A handler still runs in a context of its own, as in an asyncio task made for
it: a worker whose handler changed a context variable (``ContextVar.set``)
retires after that job, and the next one starts in a fresh worker.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Iterator

from aiokafka.structs import TopicPartition

from agentlog.agents.runtime.buffer import PriorityBuffer
from agentlog.agents.runtime.cancel import RunningHandlers
from agentlog.agents.runtime.context import ProgressSink, TaskContext
from agentlog.agents.runtime.definition import Handler
from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.jobs import Job

_Job = Job[TopicPartition]


class Workers:
    """Up to ``concurrency`` worker tasks that run the buffered jobs.

    Args:
        concurrency: most jobs running at once.
        buffer: the waiting jobs.
        handler: the agent's handler.
        handlers: the running handlers (cancellation).
        took: called after a job left the buffer (it has room).
        finished: called with each job and its outcome when its handler is done.
        stopping: once set, no job starts any more.
        agent_id: the agent (contexts, task names).
        progress_sink: where handlers' progress reports go.
        watch: done-callback of every worker task (a crash stops the pool).
    """

    def __init__(
        self,
        concurrency: int,
        buffer: PriorityBuffer[_Job],
        *,
        handler: Handler,
        handlers: RunningHandlers,
        took: Callable[[], None],
        finished: Callable[[_Job, Outcome], None],
        stopping: asyncio.Event,
        agent_id: str,
        progress_sink: ProgressSink,
        watch: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self.concurrency = concurrency
        self._buffer = buffer
        self._handler = handler
        self._handlers = handlers
        self._took = took
        self._finished = finished
        self._stopping = stopping
        self._agent_id = agent_id
        self._progress_sink = progress_sink
        self._watch = watch
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0  # workers woken or started that have not looked at the buffer yet
        self._busy: dict[asyncio.Task[None], _Job] = {}
        self._context = contextvars.copy_context()  # each worker starts in a copy
        self._spawned = 0

    def __len__(self) -> int:
        """Jobs running now."""
        return len(self._busy)

    def running(self) -> Iterator[tuple[asyncio.Task[None], _Job]]:
        """The busy workers and their jobs."""
        return iter(list(self._busy.items()))

    def start(self) -> None:
        """Take the context the workers start in: the caller's (the pool's ``start``)."""
        self._context = contextvars.copy_context()

    def wake(self) -> None:
        """Get a worker going if jobs wait and none is on its way (idle, else a new one)."""
        if self._waking or not self._buffer or self._stopping.is_set():
            return
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return
        if len(self._tasks) < self.concurrency:
            self._spawned += 1
            task = asyncio.create_task(
                self._work(),
                name=f"{self._agent_id}-worker-{self._spawned}",
                context=self._context.copy(),
            )
            self._tasks.add(task)
            task.add_done_callback(self._ended)
            self._waking += 1

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._watch(task)

    async def _work(self) -> None:
        """One worker: run waiting jobs, wait while there are none, until stopping."""
        me = asyncio.current_task()
        if me is None:  # never: wake() runs this in a task
            raise RuntimeError("a worker must run in an asyncio task")
        buffer, busy, stopping = self._buffer, self._busy, self._stopping
        handler, run, took, finished = (
            self._handler,
            self._handlers.run,
            self._took,
            self._finished,
        )
        agent_id, sink = self._agent_id, self._progress_sink
        base = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        while True:
            self._waking -= 1
            while buffer and not stopping.is_set():
                job = buffer.pop()
                job.started = True
                took()
                self.wake()  # another worker for the jobs still waiting
                busy[me] = job
                try:
                    ctx = TaskContext(job.task, agent_id=agent_id, progress_sink=sink)
                    outcome = await run(handler, ctx, runner=me)
                finally:
                    del busy[me]
                finished(job, outcome)
                if contextvars.copy_context() != base:
                    self._retire(me)  # the handler set a context variable: not for the next
                    return
            if stopping.is_set():
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():  # cancelled while idle
                    waiter.cancel()

    def _retire(self, me: asyncio.Task[None]) -> None:
        self._tasks.discard(me)
        self.wake()  # a fresh worker, if jobs wait

    async def drain(self, grace: float) -> tuple[list[_Job], set[asyncio.Task[None]]]:
        """On stop (``stopping`` set): wait up to ``grace`` for the running jobs to finish.

        Returns:
            the jobs still running then, and their workers (the caller tells and
            cancels them).
        """
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)  # idle workers see ``stopping`` and end
        if not self._tasks:
            return [], set()
        _, pending = await asyncio.wait(list(self._tasks), timeout=max(grace, 0.0))
        unfinished = [self._busy[task] for task in pending if task in self._busy]
        return unfinished, pending
