"""Event-sourced locks: leases with fencing tokens and FIFO queues, decided by a lock manager.

The pure core (:mod:`.state`, :mod:`.evolve`, :mod:`.decide`, :mod:`.timers`,
:mod:`.commands`) decides; :class:`LockManager` (:mod:`.runner`) drives it on
the ``locks`` topic as the single writer per resource; :class:`LockClient`
(:mod:`.client`, :mod:`.lease`, :mod:`.tail`) takes, renews and releases
leases; :mod:`.fencing` makes PostgreSQL and Redis refuse writes with stale
tokens. Run the manager with ``agentlog locks run`` or ``python -m
agentlog.agents.locks``; ``docs/locks.md`` explains the model and guarantees.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlog.agents.locks.client import LockClient, LockContext
    from agentlog.agents.locks.commands import (
        LockInput,
        LockTimer,
        ReleaseRequest,
        RenewRequest,
        command_of,
        is_decision,
    )
    from agentlog.agents.locks.decide import Decision, decide, handle
    from agentlog.agents.locks.errors import (
        FenceError,
        InvalidLockRequestError,
        LockDeniedError,
        LockError,
        LockLostError,
        LockManagerError,
        LockTimeoutError,
    )
    from agentlog.agents.locks.evolve import evolve, fold
    from agentlog.agents.locks.fencing import (
        FencedScript,
        FenceResult,
        PostgresFence,
        RedisFence,
        fenced_script,
    )
    from agentlog.agents.locks.lease import Lease
    from agentlog.agents.locks.runner import LockManager, LockManagerConfig, LockManagerStats
    from agentlog.agents.locks.state import Holder, LockState, Waiter
    from agentlog.agents.locks.timers import next_timer, pending_timers

#: Public name -> the module defining it; imported on first use, so that the
#: CLI can register ``agentlog locks`` without loading aiokafka, asyncpg or redis.
_EXPORTS = {
    "LockClient": "client",
    "LockContext": "client",
    "LockInput": "commands",
    "LockTimer": "commands",
    "ReleaseRequest": "commands",
    "RenewRequest": "commands",
    "command_of": "commands",
    "is_decision": "commands",
    "Decision": "decide",
    "decide": "decide",
    "handle": "decide",
    "FenceError": "errors",
    "InvalidLockRequestError": "errors",
    "LockDeniedError": "errors",
    "LockError": "errors",
    "LockLostError": "errors",
    "LockManagerError": "errors",
    "LockTimeoutError": "errors",
    "evolve": "evolve",
    "fold": "evolve",
    "FenceResult": "fencing",
    "FencedScript": "fencing",
    "PostgresFence": "fencing",
    "RedisFence": "fencing",
    "fenced_script": "fencing",
    "Lease": "lease",
    "LockManager": "runner",
    "LockManagerConfig": "runner",
    "LockManagerStats": "runner",
    "Holder": "state",
    "LockState": "state",
    "Waiter": "state",
    "next_timer": "timers",
    "pending_timers": "timers",
}

__all__ = [
    "Decision",
    "FenceError",
    "FenceResult",
    "FencedScript",
    "Holder",
    "InvalidLockRequestError",
    "Lease",
    "LockClient",
    "LockContext",
    "LockDeniedError",
    "LockError",
    "LockInput",
    "LockLostError",
    "LockManager",
    "LockManagerConfig",
    "LockManagerError",
    "LockManagerStats",
    "LockState",
    "LockTimeoutError",
    "LockTimer",
    "PostgresFence",
    "RedisFence",
    "ReleaseRequest",
    "RenewRequest",
    "Waiter",
    "command_of",
    "decide",
    "evolve",
    "fenced_script",
    "fold",
    "handle",
    "is_decision",
    "next_timer",
    "pending_timers",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
