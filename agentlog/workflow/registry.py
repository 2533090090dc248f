"""A registry of workflow definitions: name + version -> spec."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from agentlog.schemas.events import JsonValue
from agentlog.workflow.errors import SpecError, SpecProblem, UnknownDefinitionError
from agentlog.workflow.spec import WorkflowSpec
from agentlog.workflow.validate import validate


class WorkflowRegistry:
    """Valid workflow specs by name and version.

    Build it once at startup and pass it to the orchestrator core; the core only
    reads it. A request that names no version gets the latest, and
    ``WorkflowStarted`` records the spec it got, so replays never need the registry.
    """

    def __init__(self, specs: Iterable[WorkflowSpec] = ()) -> None:
        self._specs: dict[str, dict[int, WorkflowSpec]] = {}
        for spec in specs:
            self.register(spec)

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
