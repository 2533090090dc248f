"""The orchestrator: the pure workflow core (:mod:`agentlog.workflow`) driven by Kafka.

:class:`Orchestrator` consumes ``requests`` + ``responses``, appends decisions
to ``journal`` (acknowledged) before publishing tasks to ``tasks.<kind>``
(acknowledged) before committing its input offsets, recovers each partition it
is given by folding that partition's journal, and fires durable timers. Run it
with ``agentlog orchestrator run`` or ``python -m agentlog.agents.orchestrator``;
``docs/orchestrator.md`` explains the guarantees.

Modules by role: :mod:`.runner` (lifecycle, input loop, rebalances),
:mod:`.inputs` (a batch through the core), :mod:`.partition` (per-partition
state and recovery), :mod:`.timers` (durable timer heap), :mod:`.journal`
(atomic appends, journal reading), :mod:`.publish` (tasks, breakers' held
tasks), :mod:`.breaker`, :mod:`.routing` (partition of a workflow),
:mod:`.definitions` (the registry), :mod:`.cli`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlog.agents.orchestrator.breaker import BreakerState, CircuitBreakers
    from agentlog.agents.orchestrator.definitions import build_registry, load_definitions
    from agentlog.agents.orchestrator.routing import co_owned, partition_for
    from agentlog.agents.orchestrator.runner import (
        Orchestrator,
        OrchestratorConfig,
        OrchestratorError,
        RunnerStats,
    )
    from agentlog.agents.orchestrator.timers import TimerHeap

#: Public name -> the module defining it; imported on first use, so that the
#: CLI can register ``agentlog orchestrator`` without loading the runner.
_EXPORTS = {
    "BreakerState": "breaker",
    "CircuitBreakers": "breaker",
    "build_registry": "definitions",
    "load_definitions": "definitions",
    "co_owned": "routing",
    "partition_for": "routing",
    "Orchestrator": "runner",
    "OrchestratorConfig": "runner",
    "OrchestratorError": "runner",
    "RunnerStats": "runner",
    "TimerHeap": "timers",
}

__all__ = [
    "BreakerState",
    "CircuitBreakers",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorError",
    "RunnerStats",
    "TimerHeap",
    "build_registry",
    "co_owned",
    "load_definitions",
    "partition_for",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
