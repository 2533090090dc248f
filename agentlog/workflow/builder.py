"""A small immutable builder for workflow specs.

Example::

    spec = (
        workflow("pr-deploy", version=1, example_input={"repo": "acme/shop", "pr": 42})
        .step("review", agent="reviewer", input={"repo": "${input.repo}", "pr": "${input.pr}"})
        .step("tests", agent="tester", after="review", when="steps.review.output.approved")
        .step("deploy", agent="deployer", after="tests", locks=[lock("repo:${input.repo}")])
        .build()
    )
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from agentlog.schemas.events import PRIORITY_DEFAULT, JsonValue
from agentlog.workflow.errors import SpecError
from agentlog.workflow.spec import LockDecl, LoopExhausted, Repeat, RetryPolicy, Step, WorkflowSpec
from agentlog.workflow.validate import validate


def workflow(
    name: str,
    *,
    version: int = 1,
    description: str = "",
    priority: int = PRIORITY_DEFAULT,
    timeout_ms: int | None = None,
    example_input: JsonValue = None,
    output: JsonValue = None,
    required_input: Iterable[str] = (),
) -> WorkflowBuilder:
    """Start building a spec; see :class:`~agentlog.workflow.spec.WorkflowSpec` for the fields."""
    return WorkflowBuilder(
        WorkflowSpec(
            name=name,
            version=version,
            steps=(),
            timeout_ms=timeout_ms,
            priority=priority,
            example_input=example_input,
            description=description,
            output=output,
            required_input=tuple(required_input),
        )
    )


def repeat(
    back_to: str, *, while_: str, max_iterations: int, on_exhausted: LoopExhausted = "continue"
) -> Repeat:
    """A bounded loop for :meth:`WorkflowBuilder.step`'s ``repeat``."""
    return Repeat(
        back_to=back_to, while_=while_, max_iterations=max_iterations, on_exhausted=on_exhausted
    )


def lock(resource: str, *, ttl_ms: int = 60_000, wait_ms: int = 30_000) -> LockDecl:
    """A lock declaration for :meth:`WorkflowBuilder.step`'s ``locks``."""
    return LockDecl(resource=resource, ttl_ms=ttl_ms, wait_ms=wait_ms)


@dataclass(frozen=True, slots=True)
class WorkflowBuilder:
    """Accumulates steps; every method returns a new builder."""

    spec: WorkflowSpec

    def step(
        self,
        name: str,
        *,
        agent: str | None = None,
        input: JsonValue = None,
        after: str | Iterable[str] = (),
        for_each: str | None = None,
        when: str | None = None,
        repeat: Repeat | None = None,
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        signal: str | None = None,
        locks: Iterable[LockDecl] = (),
        continue_on_failure: bool = False,
    ) -> WorkflowBuilder:
        """Add a step; see :class:`~agentlog.workflow.spec.Step` for the fields.

        ``after`` takes one step name or several.
        """
        new = Step(
            name=name,
            agent=agent,
            input=input,
            after=(after,) if isinstance(after, str) else tuple(after),
            for_each=for_each,
            when=when,
            repeat=repeat,
            retry=RetryPolicy() if retry is None else retry,
            timeout_ms=timeout_ms,
            signal=signal,
            locks=tuple(locks),
            continue_on_failure=continue_on_failure,
        )
        return WorkflowBuilder(replace(self.spec, steps=(*self.spec.steps, new)))

    def build(self) -> WorkflowSpec:
        """The spec, validated.

        Raises:
            SpecError: the spec is invalid; the message names every problem.
        """
        problems = validate(self.spec)
        if problems:
            raise SpecError(self.spec.name, problems)
        return self.spec
