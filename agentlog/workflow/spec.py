"""Workflow specs as data: frozen, JSON-compatible, versioned.

A :class:`WorkflowSpec` is a DAG of :class:`Step` s. Build one with
:func:`agentlog.workflow.builder.workflow`, or write its JSON by hand and read
it with :meth:`WorkflowSpec.from_json`. ``WorkflowStarted`` records
:meth:`WorkflowSpec.to_json` of the spec a workflow runs, so a history replays
without the registry. The JSON format is described in ``docs/workflows.md``.

JSON-valued fields (``Step.input``, ``WorkflowSpec.output``,
``WorkflowSpec.example_input``) hold plain ``dict`` / ``list`` values, like the
JSON fields of the events in :mod:`agentlog.schemas.events`: JMESPath and the
Avro codec take them as they are, so freezing them would mean converting on
every evaluation. Treat them as immutable; nothing in agentlog mutates them.
Specs that contain such values are therefore not hashable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentlog.schemas.events import PRIORITY_DEFAULT, JsonObject, JsonValue

#: Version of the spec's JSON format (the ``"format"`` key), not of a workflow.
SPEC_FORMAT = 1

LoopExhausted = Literal["continue", "fail"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a failed step attempt is retried.

    The delay before attempt ``n + 1`` is ``initial_backoff_ms * multiplier **
    (n - 1)``, capped at ``max_backoff_ms``, then spread by ``± jitter`` (a
    fraction) using a hash of the task id, so it is deterministic.

    Attributes:
        max_attempts: attempts in total, including the first; 1 means no retry.
        initial_backoff_ms: delay before the second attempt.
        multiplier: growth of the delay per attempt (>= 1).
        max_backoff_ms: upper bound of any delay.
        jitter: fraction of the delay to spread retries by, 0.0-1.0.
        non_retryable: error kinds never retried (``"timeout"`` covers step timeouts).
    """

    max_attempts: int = 3
    initial_backoff_ms: int = 1_000
    multiplier: float = 2.0
    max_backoff_ms: int = 60_000
    jitter: float = 0.2
    non_retryable: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        """The policy as a JSON object."""
        return {
            "max_attempts": self.max_attempts,
            "initial_backoff_ms": self.initial_backoff_ms,
            "multiplier": self.multiplier,
            "max_backoff_ms": self.max_backoff_ms,
            "jitter": self.jitter,
            "non_retryable": list(self.non_retryable),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeat:
    """A bounded loop, declared on its last step.

    When the step completes and ``while_`` is true, the steps from ``back_to``
    through this one run again, at most ``max_iterations`` times in all.

    Attributes:
        back_to: the first step of the loop body: this step or one it depends on.
        while_: JMESPath condition, evaluated after each round (JSON key ``"while"``).
        max_iterations: rounds at most, including the first (1-100).
        on_exhausted: ``"continue"`` leaves the loop after the last round even
            if the condition still holds; ``"fail"`` fails the workflow.
    """

    back_to: str
    while_: str
    max_iterations: int
    on_exhausted: LoopExhausted = "continue"

    def to_json(self) -> JsonObject:
        """The loop as a JSON object."""
        return {
            "back_to": self.back_to,
            "while": self.while_,
            "max_iterations": self.max_iterations,
            "on_exhausted": self.on_exhausted,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LockDecl:
    """A lock each attempt of a step holds while it runs (see :mod:`agentlog.workflow.steplocks`).

    Attributes:
        resource: a ``${...}`` template of the resource id, e.g. ``"repo:${input.repo}"``.
        ttl_ms: lease duration once granted.
        wait_ms: how long to wait for the grant before the step fails.
    """

    resource: str
    ttl_ms: int = 60_000
    wait_ms: int = 30_000

    def to_json(self) -> JsonObject:
        """The lock as a JSON object."""
        return {"resource": self.resource, "ttl_ms": self.ttl_ms, "wait_ms": self.wait_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step: an agent task, or a wait for a signal.

    Attributes:
        name: unique within the workflow; letters, digits, ``_`` and ``-``.
        agent: agent kind that runs the step (tasks go to ``tasks.<agent>``);
            None for a signal step.
        input: ``${...}`` template of the task input.
        after: steps that must be done (completed, skipped or failed with
            ``continue_on_failure``) before this one starts.
        for_each: JMESPath expression giving a list: one task per item, with
            ``item`` and ``index`` in the input's context; the step's output is
            the list of item outputs, in item order.
        when: JMESPath condition; when false the step is skipped (output null).
        repeat: a bounded loop ending at this step.
        retry: how failed attempts are retried.
        timeout_ms: deadline of each attempt (or of the signal wait).
        signal: name of the signal this step waits for; it completes with the payload.
        locks: locks held while the step runs.
        continue_on_failure: when the step finally fails, record it (status
            ``failed``, output null) and go on instead of failing the workflow.
    """

    name: str
    agent: str | None = None
    input: JsonValue = None
    after: tuple[str, ...] = ()
    for_each: str | None = None
    when: str | None = None
    repeat: Repeat | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout_ms: int | None = None
    signal: str | None = None
    locks: tuple[LockDecl, ...] = ()
    continue_on_failure: bool = False

    def to_json(self) -> JsonObject:
        """The step as a JSON object, every field present."""
        return {
            "name": self.name,
            "agent": self.agent,
            "input": self.input,
            "after": list(self.after),
            "for_each": self.for_each,
            "when": self.when,
            "repeat": None if self.repeat is None else self.repeat.to_json(),
            "retry": self.retry.to_json(),
            "timeout_ms": self.timeout_ms,
            "signal": self.signal,
            "locks": [lock.to_json() for lock in self.locks],
            "continue_on_failure": self.continue_on_failure,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSpec:
    """A versioned workflow definition.

    Attributes:
        name: the definition name; letters, digits, ``.``, ``_`` and ``-``.
        version: the definition version, from 1.
        steps: the steps, in any order that lists each step once.
        timeout_ms: the whole workflow's deadline, or None.
        priority: 1 (lowest) to 5 (highest); used when a request leaves the
            default priority.
        example_input: an input that runs, for docs, the CLI and the web page.
        description: free text.
        output: ``${...}`` template of the workflow output; None gives an object
            of the outputs of the steps nothing depends on.
        required_input: keys the input object must have, non-null.
    """

    name: str
    version: int = 1
    steps: tuple[Step, ...]
    timeout_ms: int | None = None
    priority: int = PRIORITY_DEFAULT
    example_input: JsonValue = None
    description: str = ""
    output: JsonValue = None
    required_input: tuple[str, ...] = ()

    def step(self, name: str) -> Step:
        """The step called ``name``.

        Raises:
            KeyError: there is no such step.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_json(self) -> JsonObject:
        """The spec as a JSON object, every field present (the canonical form)."""
        return {
            "format": SPEC_FORMAT,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "priority": self.priority,
            "timeout_ms": self.timeout_ms,
            "required_input": list(self.required_input),
            "example_input": self.example_input,
            "output": self.output,
            "steps": [step.to_json() for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: JsonValue | str | bytes) -> WorkflowSpec:
        """Read and validate a spec from its JSON value or JSON text.

        Raises:
            SpecError: the JSON is not a spec, or the spec is invalid; the
                message names every problem and its step.
        """
        from agentlog.workflow.parse import spec_from_json

        return spec_from_json(data)
