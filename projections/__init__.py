"""agentlog.projections: PostgreSQL read models of the topics, the projector, the query API.

Modules by role: :mod:`.folds` (pure event -> row folds), :mod:`.tables` and
:mod:`.store` (bulk SQL, one transaction per batch with the offsets),
:mod:`.runner` (the projector: manual assignment, batching, reconnects),
:mod:`.migrate` (numbered SQL migrations), :mod:`.rebuild` (shadow rebuild,
compare, swap), :mod:`.api` (FastAPI), :mod:`.cli` (``agentlog projector run``,
``agentlog rebuild``, ``agentlog api``). See ``docs/projections.md``.

Nothing here connects or reads the environment at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlog.projections.config import ProjectionSettings
    from agentlog.projections.errors import DatabaseUnavailable, ProjectionError
    from agentlog.projections.rebuild import RebuildReport, rebuild
    from agentlog.projections.runner import Projector, ProjectorConfig

_EXPORTS = {
    "DatabaseUnavailable": "errors",
    "ProjectionError": "errors",
    "ProjectionSettings": "config",
    "Projector": "runner",
    "ProjectorConfig": "runner",
    "RebuildReport": "rebuild",
    "rebuild": "rebuild",
}

__all__ = [
    "DatabaseUnavailable",
    "ProjectionError",
    "ProjectionSettings",
    "Projector",
    "ProjectorConfig",
    "RebuildReport",
    "rebuild",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
