"""Defining agents and loading them from module:attribute strings."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

from agentlog.agents import runtime
from agentlog.agents.runtime import Agent, TaskContext, agent, load_agents
from agentlog.errors import ConfigError
from agentlog.schemas.events import JsonValue


async def echo(ctx: TaskContext) -> JsonValue:
    return ctx.input


@agent("reviewer", concurrency=3, version="2.1")
async def REVIEWER(ctx: TaskContext) -> JsonValue:
    """Reviews pull requests.

    More text.
    """
    return {"approved": True}


AGENTS = [Agent("a-kind", echo), Agent("b-kind", echo)]
NOT_AN_AGENT = 42


def test_the_decorator_makes_an_agent() -> None:
    assert isinstance(REVIEWER, Agent)
    assert (REVIEWER.kind, REVIEWER.concurrency, REVIEWER.version) == ("reviewer", 3, "2.1")
    assert REVIEWER.description == "Reviews pull requests."


def test_a_kind_that_cannot_name_a_topic_is_refused() -> None:
    with pytest.raises(ConfigError, match="agent kind='Code Review'"):
        Agent("Code Review", echo)


def test_a_sync_handler_is_refused() -> None:
    def sync(ctx: TaskContext) -> JsonValue:
        return None

    with pytest.raises(ConfigError, match="is not an async function"):
        Agent("x", sync)  # type: ignore[arg-type]


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"concurrency=0: must be within 1\.\.10000"):
        Agent("x", echo, concurrency=0)


def test_load_one_agent_or_a_list() -> None:
    [one] = load_agents([f"{__name__}:REVIEWER"])
    assert one is REVIEWER
    assert [a.kind for a in load_agents([f"{__name__}:AGENTS"])] == ["a-kind", "b-kind"]


def test_the_demo_agents_load() -> None:
    kinds = {a.kind for a in load_agents(["agentlog.agents.demo:DEMO_AGENTS"])}
    assert {"reviewer", "writer", "supervisor", "cost-analyst", "noop"} <= kinds


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "is not module:attribute"),
        ("no_such_module_xyz:agent", "module 'no_such_module_xyz' not found"),
        (f"{__name__}:MISSING", "has no attribute 'MISSING'"),
        (f"{__name__}:NOT_AN_AGENT", "is a int, not an Agent"),
    ],
)
def test_bad_targets_say_what_is_wrong(target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_agents([target])


def test_the_same_kind_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="reviewer given more than once"):
        load_agents([f"{__name__}:REVIEWER", f"{__name__}:REVIEWER"])


def test_every_public_name_loads_and_no_submodule_shadows_one() -> None:
    for info in pkgutil.iter_modules(runtime.__path__):
        if info.name != "__main__":
            importlib.import_module(f"{runtime.__name__}.{info.name}")
    for name in runtime.__all__:
        assert not isinstance(getattr(runtime, name), types.ModuleType), name
