"""Guarantee: bad input to the API gets a clear error and changes nothing (docs/guarantees.md).

The API's writes only produce events, so "changes nothing" is measured on the
broker (the end offset of every partition of every topic under the test's
prefix, and the set of topics) and, for good measure, in PostgreSQL (the
content hash of every read-model table). A good start at the end shows the
measure sees a produced event, on the one partition it went to.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.projections.rebuild import TableHash, table_hashes
from agentlog.projections.tables import ALL_TABLES
from agentlog.settings import Settings
from agentlog.streams.topics import REQUESTS
from tests.integration.orchestrator.test_guarantees_cli_input import changed, log_ends
from tests.integration.projections.test_projections_api import api_client, projected

LONG_ID = "w" * 201

#: method, path, JSON body (bytes: sent as is), status, a fragment the answer names
BAD_WRITES: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/workflows", {"definition": "pr-deploy", "priority": 9}, 422, "priority"),
    ("POST", "/workflows", {"definition": "pr-deploy", "version": 0}, 422, "version"),
    ("POST", "/workflows", {}, 422, "definition"),
    ("POST", "/workflows", {"definition": "pr-deploy", "spec": {"name": "x"}}, 422, "spec"),
    ("POST", "/workflows", {"definition": "", "input": {}}, 422, "definition"),
    ("POST", "/workflows", {"definition": "pr-deploy", "workflow_id": LONG_ID}, 422, "workflow_id"),
    ("POST", "/workflows", {"definition": "pr-deploy", "labels": {"team": 1}}, 422, "labels"),
    ("POST", "/workflows", b'{"definition": "pr-deploy",', 422, "JSON"),
    ("POST", "/workflows/wf-1/signals", {"signal": ""}, 422, "signal"),
    ("POST", "/workflows/wf-1/signals", {"payload": {"by": "alice"}}, 422, "signal"),
    ("POST", "/workflows/wf-1/cancel", {"reason": 5}, 422, "reason"),
    ("POST", "/workflows/wf-1/cancel", {"reason": "x", "force": True}, 422, "force"),
    ("POST", f"/workflows/{LONG_ID}/cancel", {"reason": "x"}, 422, "workflow_id"),
    ("POST", "/dead-letters/no-such-letter/redrive", None, 404, "no-such-letter"),
    ("DELETE", "/workflows/wf-1", None, 405, "not allowed"),
]


async def read_models(dsn: str, schema: str) -> dict[str, TableHash]:
    """Row count and content hash of every table of the projection."""
    conn = await asyncpg.connect(dsn)
    try:
        return await table_hashes(conn, schema, [*ALL_TABLES, "projector_offsets"])
    finally:
        await conn.close()


@pytest.mark.timeout(120)
async def test_bad_api_writes_get_a_4xx_naming_the_problem_and_change_nothing(
    settings: Settings, schema: str, postgres_dsn: str
) -> None:
    await projected(settings, schema, workflows=3)
    logs, rows = await log_ends(settings), await read_models(postgres_dsn, schema)
    async with api_client(settings, schema) as api:
        for method, path, body, status, fragment in BAD_WRITES:
            if isinstance(body, bytes):
                headers = {"content-type": "application/json"}
                response = await api.request(method, path, content=body, headers=headers)
            else:
                response = await api.request(method, path, json=body)
            assert response.status_code == status, (method, path, body, response.text)
            assert fragment in response.text, (method, path, body, response.text)
        assert changed(logs, await log_ends(settings)) == {}
        assert await read_models(postgres_dsn, schema) == rows

        # the measure sees a produced event: a good start appends one request
        workflow_id = f"control-{uuid.uuid4().hex[:8]}"
        good = {"definition": "pr-deploy", "input": {}, "workflow_id": workflow_id}
        assert (await api.post("/workflows", json=good)).status_code == 202
    home = partition_for(workflow_id, settings.partitions)
    # only its partition of requests moved (by more than one record on Tansu, whose
    # end offset lags when the last batch holds several records: see test_partition_log.py)
    assert set(changed(logs, await log_ends(settings))) == {
        f"{settings.topic(REQUESTS.name)}:{home}"
    }
