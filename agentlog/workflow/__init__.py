"""Workflow specs as data and the orchestrator's pure core (no I/O).

Specs: :class:`WorkflowSpec`, :class:`Step`, built with :func:`workflow` or read
with :meth:`WorkflowSpec.from_json`, kept in a :class:`WorkflowRegistry`.

Core: :func:`decide` / :func:`handle` (input -> journal events) and
:func:`evolve` / :func:`fold` (journal -> :class:`WorkflowState`); timers from
:func:`next_timer`, fed back as :class:`TimerFired`; tasks for agents from
:func:`task_for`. The runner contract is in ``docs/workflows.md``.

Nothing here imports fastavro, aiokafka or asyncio.
"""

from agentlog.workflow.batch import JournalEvent
from agentlog.workflow.builder import WorkflowBuilder, lock, repeat, workflow
from agentlog.workflow.decide import Decision, Input, decide, handle
from agentlog.workflow.errors import JournalError, SpecError, SpecProblem, UnknownDefinitionError
from agentlog.workflow.evolve import evolve, fold
from agentlog.workflow.registry import WorkflowRegistry
from agentlog.workflow.spec import LockDecl, Repeat, RetryPolicy, Step, WorkflowSpec
from agentlog.workflow.state import (
    StepState,
    StepStatus,
    TaskState,
    TaskStatus,
    WorkflowState,
    WorkflowStatus,
)
from agentlog.workflow.steplocks import (
    LOCK_DECISION_GRACE_MS,
    dispatchable_after,
    lock_requests_to_publish,
    releases_between,
    releases_to_publish,
    requests_after,
)
from agentlog.workflow.tasks import (
    cancellation_for,
    cancellations_to_publish,
    open_tasks,
    task_for,
    tasks_to_publish,
)
from agentlog.workflow.timers import TimerFired, next_timer, pending_timers
from agentlog.workflow.validate import validate

__all__ = [
    "LOCK_DECISION_GRACE_MS",
    "Decision",
    "Input",
    "JournalError",
    "JournalEvent",
    "LockDecl",
    "Repeat",
    "RetryPolicy",
    "SpecError",
    "SpecProblem",
    "Step",
    "StepState",
    "StepStatus",
    "TaskState",
    "TaskStatus",
    "TimerFired",
    "UnknownDefinitionError",
    "WorkflowBuilder",
    "WorkflowRegistry",
    "WorkflowSpec",
    "WorkflowState",
    "WorkflowStatus",
    "cancellation_for",
    "cancellations_to_publish",
    "decide",
    "dispatchable_after",
    "evolve",
    "fold",
    "handle",
    "lock",
    "lock_requests_to_publish",
    "next_timer",
    "open_tasks",
    "pending_timers",
    "releases_between",
    "releases_to_publish",
    "repeat",
    "requests_after",
    "task_for",
    "tasks_to_publish",
    "validate",
    "workflow",
]
