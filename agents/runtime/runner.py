"""Run several agents in one process, and load them from ``module:attribute`` strings."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType

from agentlog.agents.runtime.definition import Agent
from agentlog.agents.runtime.pool import AgentPool
from agentlog.errors import ConfigError
from agentlog.settings import Settings
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import (
    AGENTS,
    DEADLETTER,
    RESPONSES,
    TopicSpec,
    ensure_topics,
    tasks_topic,
)

logger = logging.getLogger(__name__)

_EXAMPLE_TARGET = "agentlog.agents.demo:DEMO_AGENTS"


def load_agents(targets: Iterable[str]) -> list[Agent]:
    """Import the agents named by ``module:attribute`` strings.

    The attribute may be dotted (``pkg.mod:registry.reviewer``) and may hold an
    :class:`Agent` or a list/tuple of them.

    Raises:
        ConfigError: naming the target, what is wrong with it and the fix.
    """
    names = list(targets)
    agents = [a for target in names for a in _load_one(target)]
    kinds = [a.kind for a in agents]
    duplicates = sorted({k for k in kinds if kinds.count(k) > 1})
    if duplicates:
        raise ConfigError(
            "agent",
            " ".join(names),
            f"agent kind(s) {', '.join(duplicates)} given more than once",
            "Run each kind once per process; raise its concurrency to run more tasks at once.",
        )
    if not agents:
        raise ConfigError("agent", names, "no agents to run", f"Name some, e.g. {_EXAMPLE_TARGET}.")
    return agents


def _load_one(target: str) -> list[Agent]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            "agent", target, "is not module:attribute", f"Use e.g. {_EXAMPLE_TARGET}."
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(
                "agent",
                target,
                f"module {module_name!r} not found",
                "Check the spelling, install the package, or run from the directory that holds it.",
            ) from e
        raise ConfigError(
            "agent",
            target,
            f"module {module_name!r} imports {e.name!r}, which is not installed",
            f"Install {e.name!r} where the agent runs.",
        ) from e
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(
                "agent",
                target,
                f"{module_name} has no attribute {attr!r}",
                "Point at a module-level Agent (or list of Agents), e.g. mymodule:reviewer.",
            ) from None
    if isinstance(value, Agent):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(v, Agent) for v in value):
        return list(value)
    raise ConfigError(
        "agent",
        target,
        f"is a {type(value).__name__}, not an Agent or a non-empty list of Agents",
        "Define it with Agent(kind=..., handler=...) or the @agent(kind) decorator.",
    )


def topics_for(agents: Iterable[Agent]) -> list[TopicSpec]:
    """The topics pools use: ``tasks.<kind>`` of each, ``responses``, ``agents``, dead letters."""
    return [RESPONSES, AGENTS, DEADLETTER, *(tasks_topic(a.kind) for a in agents)]


class AgentRunner:
    """Several agents in one process: one :class:`AgentPool` each, sharing one producer.

    Use as ``async with AgentRunner(agents, settings) as runner: await runner.wait()``.
    Pools stop together (in parallel, each with its grace period).
    """

    def __init__(
        self,
        agents: Sequence[Agent],
        settings: Settings,
        *,
        concurrency: int | None = None,
        shutdown_grace: float = 30.0,
        heartbeat_interval: float = 5.0,
        commit_interval: float = 0.2,
        create_topics: bool = True,
    ) -> None:
        """Args:
        agents: the agents to run (distinct kinds).
        settings: broker and topic prefix.
        concurrency: overrides every agent's own concurrency.
        shutdown_grace: seconds running tasks get to finish on stop.
        heartbeat_interval: seconds between heartbeats.
        commit_interval: seconds between offset commits of answered tasks.
        create_topics: create missing topics on start (idempotent).
        """
        self.agents = list(agents)
        self._settings = settings
        self._concurrency = concurrency
        self._grace = shutdown_grace
        self._heartbeat = heartbeat_interval
        self._commit_interval = commit_interval
        self._create_topics = create_topics
        self._producer: EventProducer | None = None
        self.pools: list[AgentPool] = []
        self._started = False

    async def start(self) -> None:
        """Create the topics, start the producer and every pool; idempotent."""
        if self._started:
            return
        if self._create_topics:
            await ensure_topics(self._settings, topics_for(self.agents))
        async with contextlib.AsyncExitStack() as undo:
            producer = EventProducer(self._settings, client_id=f"{self._settings.source}-agents")
            await producer.start()
            undo.push_async_callback(producer.stop)
            pools = [self._pool(a, producer) for a in self.agents]
            for pool in pools:
                undo.push_async_callback(pool.stop, "start failed")
            await asyncio.gather(*(pool.start() for pool in pools))
            undo.pop_all()
        self._producer, self.pools, self._started = producer, pools, True
        logger.info(
            "running %s agent kind(s): %s", len(pools), ", ".join(p.agent_id for p in pools)
        )

    def _pool(self, agent: Agent, producer: EventProducer) -> AgentPool:
        return AgentPool(
            agent,
            self._settings,
            producer=producer,
            concurrency=self._concurrency,
            shutdown_grace=self._grace,
            heartbeat_interval=self._heartbeat,
            commit_interval=self._commit_interval,
        )

    async def stop(self, reason: str = "stopped") -> None:
        """Stop every pool (in parallel), then the producer; idempotent."""
        pools, self.pools = self.pools, []
        await asyncio.gather(*(pool.stop(reason) for pool in pools))
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def wait(self) -> None:
        """Until every pool stopped; raise the first pool's :class:`AgentPoolError` at once."""
        waiters = [asyncio.create_task(p.wait(), name=f"wait-{p.agent_id}") for p in self.pools]
        if not waiters:
            return
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        for waiter in done:
            waiter.result()

    async def __aenter__(self) -> AgentRunner:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed = [p for p in self.pools if p.failure is not None]
        await self.stop("stopped" if e is None else f"error: {type(e).__name__}")
        if e is None and failed:
            await failed[0].wait()  # raises its AgentPoolError
