"""Errors of the workflow model: invalid specs, unknown definitions, broken journals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentlog.errors import AgentlogError


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One thing wrong with a workflow spec.

    Attributes:
        step: the step the problem is in, or None for workflow-level problems.
        field: the offending field, e.g. ``"after"`` or ``"repeat.while"``.
        message: what is wrong and, where there is one, the fix.
    """

    step: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"step {self.step!r}: " if self.step is not None else ""
        return f"{where}{self.field}: {self.message}"


class SpecError(AgentlogError):
    """A workflow spec is invalid; fix the spec (the message lists every problem).

    Attributes:
        workflow: the spec's name, when it could be read.
        problems: every problem found, in spec order.
    """

    def __init__(self, workflow: str | None, problems: Iterable[SpecProblem]) -> None:
        self.workflow = workflow
        self.problems = tuple(problems)
        name = f" {workflow!r}" if workflow else ""
        listed = "; ".join(str(p) for p in self.problems) or "no details"
        super().__init__(f"invalid workflow spec{name}: {listed}")


class UnknownDefinitionError(AgentlogError):
    """No registered workflow definition has this name (and version)."""

    def __init__(self, name: str, version: int | None, known: Iterable[int]) -> None:
        self.name = name
        self.version = version
        self.known = tuple(known)
        if not self.known:
            message = f"unknown workflow definition {name!r}; register it first"
        else:
            versions = ", ".join(str(v) for v in self.known)
            message = (
                f"workflow definition {name!r} has no version {version}; "
                f"registered versions: {versions}"
            )
        super().__init__(message)


class JournalError(AgentlogError):
    """A journal event cannot be folded into workflow state (corrupt or incompatible history).

    The runner should stop folding that workflow and report it: the journal was
    written by code this version cannot read, or by something other than the
    orchestrator.
    """
