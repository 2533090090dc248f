"""JobIndex: a task id delivered twice runs once; its deliveries settle together."""

from __future__ import annotations

from agentlog.agents.runtime.context import TaskContext
from agentlog.agents.runtime.jobs import Admission, JobIndex
from agentlog.schemas.events import TaskRequested


def task(step: str = "s", attempt: int = 1) -> TaskRequested:
    return TaskContext.local({"x": 1}, step=step, attempt=attempt).task


def test_a_second_delivery_attaches_to_the_waiting_or_running_job() -> None:
    jobs: JobIndex[str] = JobIndex()
    t = task()
    admission, job = jobs.admit(t, "p0", 4)
    assert admission is Admission.NEW
    assert job is not None
    job.started = True
    again, same = jobs.admit(t, "p1", 9)
    assert again is Admission.ATTACHED
    assert same is job
    assert jobs.finish(job) == [("p0", 4), ("p1", 9)]


def test_a_delivery_of_a_recently_finished_task_is_settled_without_running() -> None:
    jobs: JobIndex[str] = JobIndex(remember=2)
    first = task("a")
    _, job = jobs.admit(first, "p0", 0)
    assert job is not None
    jobs.finish(job)
    assert jobs.admit(first, "p0", 0) == (Admission.FINISHED, None)
    for step in ("b", "c"):  # push "a" out of the memory
        _, other = jobs.admit(task(step), "p0", 1)
        assert other is not None
        jobs.finish(other)
    assert jobs.admit(first, "p0", 5)[0] is Admission.NEW


def test_another_attempt_of_the_same_step_is_a_different_task() -> None:
    jobs: JobIndex[str] = JobIndex()
    assert jobs.admit(task(attempt=1), "p0", 0)[0] is Admission.NEW
    assert jobs.admit(task(attempt=2), "p0", 1)[0] is Admission.NEW


def test_release_drops_waiting_jobs_of_revoked_partitions_but_keeps_running_ones() -> None:
    jobs: JobIndex[str] = JobIndex()
    _, waiting = jobs.admit(task("w"), "p0", 0)
    _, running = jobs.admit(task("r"), "p0", 1)
    _, elsewhere = jobs.admit(task("e"), "p1", 0)
    assert waiting is not None
    assert running is not None
    assert elsewhere is not None
    running.started = True
    assert jobs.release(["p0"]) == [waiting]
    assert running.deliveries == []
    assert set(jobs) == {running, elsewhere}
    assert jobs.running == [running]
    assert jobs.finish(running) == [], "its delivery now belongs to the new owner"
