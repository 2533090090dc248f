"""The context expressions are evaluated against.

``{input, steps: {name: {status, output, iteration}}, iteration, workflow:
{id, name, version}}``, plus ``item`` and ``index`` while rendering the input of
one ``for_each`` item. ``iteration`` is the step's run number (the loop round,
from 1; always 1 outside loops).
"""

from __future__ import annotations

from typing import Any

from agentlog.schemas.events import JsonValue
from agentlog.workflow.state import StepStatus, WorkflowState

JsonContext = dict[str, Any]

#: ``status.value`` of each step status (a dict lookup is cheaper than enum's descriptor).
_TEXT = {status: status.value for status in StepStatus}


def step_context(state: WorkflowState, step: str | None) -> JsonContext:
    """The context of ``step`` (None: of the workflow, e.g. for its output)."""
    current = state.steps.get(step) if step is not None else None
    return {
        "input": state.input,
        "steps": {
            name: {"status": _TEXT[s.status], "output": s.output, "iteration": s.run}
            for name, s in state.steps.items()
        },
        "iteration": current.run if current is not None else None,
        "workflow": {"id": state.workflow_id, "name": state.definition, "version": state.version},
    }


def item_context(base: JsonContext, item: JsonValue, index: int) -> JsonContext:
    """``base`` plus one ``for_each`` item and its index."""
    return {**base, "item": item, "index": index}
