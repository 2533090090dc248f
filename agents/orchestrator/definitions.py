"""The registry an orchestrator runs with: the demos plus definitions loaded at the edge.

A *source* is either a JSON file — one spec object, a list of them, or
``{"definitions": [...]}`` — or ``module:attr`` naming a ``WorkflowSpec``, a
``WorkflowRegistry``, an iterable of specs, or a function returning one of
these. Sources are read once at startup (CLI flags), never at import time.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from agentlog.errors import ConfigError
from agentlog.workflow import SpecError, WorkflowRegistry, WorkflowSpec
from agentlog.workflow.demos import DEMOS

_FLAG = "--definitions"


def build_registry(
    sources: Sequence[str] = (), *, demos: bool = True, default_timeout_ms: int | None = None
) -> WorkflowRegistry:
    """The demo definitions (unless ``demos`` is False) plus those of every source.

    ``default_timeout_ms``: see :class:`WorkflowRegistry` (the setting
    ``AGENTLOG_DEFAULT_WORKFLOW_TIMEOUT_MS``).

    Raises:
        ConfigError: a source cannot be read, or holds an invalid or conflicting spec.
    """
    registry = WorkflowRegistry(DEMOS if demos else (), default_timeout_ms=default_timeout_ms)
    for source in sources:
        for spec in load_definitions(source):
            try:
                registry.register(spec)
            except SpecError as e:
                raise ConfigError(
                    _FLAG, source, str(e), "Fix the spec or register it as a new version."
                ) from None
    return registry


def load_definitions(source: str) -> list[WorkflowSpec]:
    """The specs of one source (a JSON file, or ``module:attr``).

    Raises:
        ConfigError: naming the source, what is wrong and the fix.
    """
    path = Path(source)
    if path.suffix == ".json" or path.is_file():
        return _from_file(source, path)
    if ":" in source:
        return _from_python(source)
    raise ConfigError(
        _FLAG,
        source,
        "neither a JSON file nor module:attr",
        "Pass a path to a .json file of specs, or e.g. mypackage.flows:DEFINITIONS.",
    )


def _from_file(source: str, path: Path) -> list[WorkflowSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(_FLAG, source, f"cannot read it: {e}", "Check the path.") from None
    except ValueError as e:
        raise ConfigError(_FLAG, source, f"not JSON: {e}", "Fix the file's syntax.") from None
    if isinstance(data, dict) and set(data) == {"definitions"}:
        data = data["definitions"]
    items = data if isinstance(data, list) else [data]
    specs: list[WorkflowSpec] = []
    for index, item in enumerate(items):
        try:
            specs.append(WorkflowSpec.from_json(item))
        except SpecError as e:
            where = f"definition {index}" if isinstance(data, list) else "the definition"
            raise ConfigError(_FLAG, source, f"{where} is invalid: {e}", "Fix the spec.") from None
    return specs


def _from_python(source: str) -> list[WorkflowSpec]:
    module_name, _, attr = source.partition(":")
    try:
        value: object = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            _FLAG, source, f"cannot import {module_name!r}: {e}", "Check the module path."
        ) from None
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(
                _FLAG, source, f"{module_name} has no attribute {attr!r}", "Check the name."
            ) from None
    if callable(value) and not isinstance(value, WorkflowRegistry | WorkflowSpec):
        value = value()
    if isinstance(value, WorkflowSpec):
        return [value]
    if isinstance(value, Iterable):
        specs = list(value)
        if all(isinstance(s, WorkflowSpec) for s in specs):
            return specs
    raise ConfigError(
        _FLAG,
        source,
        f"is a {type(value).__name__}, not a WorkflowSpec, a WorkflowRegistry or specs",
        "Point it at a spec, a list of specs, a registry, or a function returning one.",
    )
