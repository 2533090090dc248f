"""Client request checks and JSON views, without a broker."""

from __future__ import annotations

import json
import uuid

import pytest

from agentlog.client import (
    AgentlogClient,
    RequestError,
    derive_workflow_id,
    event_to_json,
    state_to_json,
)
from agentlog.settings import Settings
from agentlog.workflow.demos import PR_DEPLOY, demo_registry
from tests.unit.workflow.harness import Driver


def test_a_derived_workflow_id_is_stable_and_distinct_per_key() -> None:
    assert derive_workflow_id("k-1") == derive_workflow_id("k-1")
    assert derive_workflow_id("k-1") != derive_workflow_id("k-2")
    uuid.UUID(derive_workflow_id("k-1"))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"definition": None}, "either a definition"),
        ({"definition": "x", "spec": {"name": "x"}}, "either a definition"),
        ({"definition": ""}, "definition is empty"),
        ({"definition": "x", "priority": 0}, "priority=0"),
        ({"definition": "x", "version": 0}, "version=0"),
        ({"definition": "x", "input": {"nan": float("nan")}}, "input is not JSON"),
        ({"definition": "x", "workflow_id": ""}, "workflow_id"),
    ],
)
async def test_malformed_requests_are_refused_before_anything_is_sent(
    kwargs: dict[str, object], problem: str
) -> None:
    client = AgentlogClient(Settings(kafka_bootstrap="127.0.0.1:1"))  # never started
    definition = kwargs.pop("definition")
    with pytest.raises(RequestError, match=problem):
        await client.submit(definition, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("definition", "inputs", "kwargs", "problem"),
    [
        (None, [{}], {}, "either a definition"),
        ("x", [{}], {"priority": 9}, "priority=9"),
        ("x", [{}, {"n": float("inf")}], {}, r"inputs\[1\] is not JSON"),
        (None, [{}], {"spec": {"name": float("nan")}}, "spec is not JSON"),
    ],
)
async def test_malformed_bulk_requests_are_refused_before_anything_is_sent(
    definition: str | None, inputs: list[object], kwargs: dict[str, object], problem: str
) -> None:
    client = AgentlogClient(Settings(kafka_bootstrap="127.0.0.1:1"))  # never started
    with pytest.raises(RequestError, match=problem):
        await client.submit_many(definition, inputs, **kwargs)  # type: ignore[arg-type]


async def test_an_empty_bulk_request_sends_nothing() -> None:
    client = AgentlogClient(Settings(kafka_bootstrap="127.0.0.1:1"))  # never started
    assert await client.submit_many("x", []) == []


def test_state_and_event_json_views_are_json() -> None:
    d = Driver(demo_registry(), workflow_id="wf-json")
    d.request("pr-deploy", input=PR_DEPLOY.example_input, idempotency_key="k")
    d.complete("review", {"approved": True})
    view = state_to_json(d.current)
    assert json.loads(json.dumps(view)) == view
    assert view["status"] == "running"
    assert view["steps"]["review"]["status"] == "completed"  # type: ignore[index,call-overload]
    assert view["steps"]["tests"]["tasks"][0]["agent_kind"] == "tester"  # type: ignore[index,call-overload]
    for event in d.journal:
        body = event_to_json(event)
        assert body["type"] == type(event).__name__
        assert json.loads(json.dumps(body)) == body
