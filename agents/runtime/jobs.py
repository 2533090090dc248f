"""The tasks one pool holds (waiting or running), by task id, and their deliveries.

A task id can arrive more than once: the orchestrator re-publishes open tasks
after a crash, and a rebalance redelivers everything uncommitted. While a task
waits or runs here, a second delivery is attached to it rather than run again;
when it finishes, every attached delivery is settled at once. A delivery of a
task that finished a moment ago is settled without running it (its response
was acknowledged before it counted as finished), and so is one of a task a
``TaskCancelled`` named (remembered, bounded, even when it arrives first).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from agentlog.schemas.events import TaskRequested

if TYPE_CHECKING:
    from agentlog.agents.runtime.execute import Outcome

P = TypeVar("P", bound=Hashable)

#: Finished task ids remembered to drop late duplicates.
DEFAULT_REMEMBER = 10_000


@dataclass(eq=False, slots=True)
class Job(Generic[P]):
    """One task and the log positions (partition, offset) it was delivered at."""

    task: TaskRequested
    deliveries: list[tuple[P, int]] = field(default_factory=list)
    started: bool = False
    cancelled: str | None = None  # the reason of the TaskCancelled that named it
    outcome: Outcome | None = None  # what it gave (its answer), once it ran or was dropped


class Admission(enum.Enum):
    """What :meth:`JobIndex.admit` made of a delivery."""

    NEW = "new"  # a job to buffer and run
    ATTACHED = "attached"  # the task waits or runs here already
    FINISHED = "finished"  # the task finished here recently: settle the delivery
    CANCELLED = "cancelled"  # a TaskCancelled named the task: settle the delivery, never run


class JobIndex(Generic[P]):
    """Active jobs by task id, plus the ids of recently finished ones. Pure, no I/O."""

    def __init__(self, remember: int = DEFAULT_REMEMBER) -> None:
        """Args:
        remember: how many finished (and, apart, cancelled) task ids to keep
            for dropping duplicates.
        """
        self._active: dict[str, Job[P]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self) -> Iterator[Job[P]]:
        return iter(list(self._active.values()))

    @property
    def running(self) -> list[Job[P]]:
        """Jobs started and not finished."""
        return [job for job in self._active.values() if job.started]

    def admit(self, task: TaskRequested, tp: P, offset: int) -> tuple[Admission, Job[P] | None]:
        """Register a delivery of ``task`` at ``(tp, offset)``."""
        job = self._active.get(task.task_id)
        if job is not None:
            if (tp, offset) not in job.deliveries:
                job.deliveries.append((tp, offset))
            return Admission.ATTACHED, job
        if task.task_id in self._cancelled:
            return Admission.CANCELLED, None
        if task.task_id in self._recent:
            return Admission.FINISHED, None
        job = Job(task, [(tp, offset)])
        self._active[task.task_id] = job
        return Admission.NEW, job

    def finish(self, job: Job[P]) -> list[tuple[P, int]]:
        """``job`` finished (its response is acknowledged): its deliveries to settle."""
        self._active.pop(job.task.task_id, None)
        _remember(self._recent, job.task.task_id, self._remember)
        return list(job.deliveries)

    def cancel(self, task_id: str, reason: str) -> Job[P] | None:
        """A ``TaskCancelled`` named ``task_id``: remember it; the job to stop, if any.

        Returns:
            the waiting or running job of ``task_id``, marked ``cancelled``, the
            first time it is cancelled; None when the task is not here (not
            arrived yet, finished already) or was cancelled before.
        """
        _remember(self._cancelled, task_id, self._remember)
        job = self._active.get(task_id)
        if job is None or job.cancelled is not None:
            return None
        job.cancelled = reason
        return job

    def is_cancelled(self, task_id: str) -> bool:
        """True when a ``TaskCancelled`` named ``task_id`` (within the remembered ones)."""
        return task_id in self._cancelled

    def drop(self, job: Job[P]) -> None:
        """Forget ``job`` without finishing it (handed back: it will be delivered again)."""
        self._active.pop(job.task.task_id, None)

    def release(self, partitions: Iterable[P]) -> list[Job[P]]:
        """Detach deliveries on revoked ``partitions``; drop waiting jobs left with none.

        Returns:
            the waiting jobs dropped (remove them from the buffer); running
            jobs stay and finish, their revoked deliveries no longer settled here.
        """
        revoked = set(partitions)
        dropped: list[Job[P]] = []
        for job in list(self._active.values()):
            job.deliveries = [(tp, off) for tp, off in job.deliveries if tp not in revoked]
            if not job.deliveries and not job.started:
                self.drop(job)
                dropped.append(job)
        return dropped


def _remember(ids: OrderedDict[str, None], task_id: str, limit: int) -> None:
    ids[task_id] = None
    ids.move_to_end(task_id)
    while len(ids) > limit:
        ids.popitem(last=False)
