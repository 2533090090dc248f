"""A registry of workflow definitions: name + version -> spec."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from agentlog.schemas.events import JsonValue
from agentlog.workflow.errors import SpecError, SpecProblem, UnknownDefinitionError
from agentlog.workflow.spec import WorkflowSpec
from agentlog.workflow.validate import validate


class WorkflowRegistry:
    """Valid workflow specs by name and version.

    Build it once at startup and pass it to the orchestrator core; the core only
    reads it. A request that names no version gets the latest, and
    ``WorkflowStarted`` records the spec it got, so replays never need the registry.

    Args:
        specs: the definitions.
        default_timeout_ms: the workflow deadline of every started workflow whose
            spec (registered or sent inline) sets none; None: no deadline. The
            recorded spec carries it, so it holds across restarts and replays.

    Raises:
        ValueError: ``default_timeout_ms`` is not positive.
    """

    def __init__(
        self, specs: Iterable[WorkflowSpec] = (), *, default_timeout_ms: int | None = None
    ) -> None:
        if default_timeout_ms is not None and default_timeout_ms < 1:
            raise ValueError(f"default_timeout_ms={default_timeout_ms}: at least 1 (or None)")
        self.default_timeout_ms = default_timeout_ms
        self._specs: dict[str, dict[int, WorkflowSpec]] = {}
        for spec in specs:
            self.register(spec)

    def started(self, spec: WorkflowSpec) -> WorkflowSpec:
        """The spec a workflow starts with: ``spec``, with the default deadline if it has none."""
        if spec.timeout_ms is not None or self.default_timeout_ms is None:
            return spec
        return replace(spec, timeout_ms=self.default_timeout_ms)

    def register(self, spec: WorkflowSpec) -> WorkflowSpec:
        """Add ``spec``; registering an equal spec again is a no-op.

        Raises:
            SpecError: the spec is invalid, or another spec already has its
                name and version (publish a new version instead).
        """
        problems = validate(spec)
        if problems:
            raise SpecError(spec.name, problems)
        versions = self._specs.setdefault(spec.name, {})
        existing = versions.get(spec.version)
        if existing is not None and existing != spec:
            message = (
                f"version {spec.version} is already registered with different content; "
                f"register the change as version {max(versions) + 1}"
            )
            raise SpecError(spec.name, [SpecProblem(None, "version", message)])
        versions[spec.version] = spec
        return spec

    def find(self, name: str, version: int | None = None) -> WorkflowSpec | None:
        """The spec ``name`` at ``version`` (None: the latest), or None when unknown."""
        versions = self._specs.get(name)
        if not versions:
            return None
        return versions.get(max(versions) if version is None else version)

    def get(self, name: str, version: int | None = None) -> WorkflowSpec:
        """Like :meth:`find`, but raises for an unknown name or version.

        Raises:
            UnknownDefinitionError: no such definition or version.
        """
        spec = self.find(name, version)
        if spec is None:
            raise UnknownDefinitionError(name, version, self.versions(name))
        return spec

    def latest(self, name: str) -> WorkflowSpec | None:
        """The highest version of ``name``, or None."""
        return self.find(name)

    def versions(self, name: str) -> tuple[int, ...]:
        """The registered versions of ``name``, ascending."""
        return tuple(sorted(self._specs.get(name, {})))

    def names(self) -> tuple[str, ...]:
        """The registered definition names, sorted."""
        return tuple(sorted(self._specs))

    def example_input(self, name: str, version: int | None = None) -> JsonValue:
        """The example input of a definition.

        Raises:
            UnknownDefinitionError: no such definition or version.
        """
        return self.get(name, version).example_input

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[WorkflowSpec]:
        """Every spec, by name then version."""
        for name in self.names():
            versions = self._specs[name]
            for version in sorted(versions):
                yield versions[version]

    def __len__(self) -> int:
        return sum(len(v) for v in self._specs.values())
