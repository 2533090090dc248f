"""slot_constructor builds what the dataclass's own constructor builds, or gives that back."""

from __future__ import annotations

import dataclasses

import pytest

from agentlog.agents.runtime.execute import Outcome
from agentlog.agents.runtime.slots import slot_constructor
from agentlog.schemas.events import TaskCompleted, TaskFailed, TaskUsage, new_envelope


def test_the_built_object_equals_the_constructed_one_defaults_included() -> None:
    envelope = new_envelope("TaskCompleted", "wf", source="test")
    fields = {
        "envelope": envelope,
        "task_id": "wf/s/1/0/1",
        "workflow_id": "wf",
        "step": "s",
        "attempt": 1,
        "output": {"a": [1, 2]},
        "agent_id": "a-1",
    }
    built = slot_constructor(TaskCompleted)(**fields)
    assert type(built) is TaskCompleted
    assert built == TaskCompleted(**fields)
    assert built.usage == TaskUsage()  # the field's default
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.step = "other"  # type: ignore[misc]
    usage = slot_constructor(TaskUsage)(latency_ms=2.5)
    assert usage == TaskUsage(latency_ms=2.5)
    assert slot_constructor(Outcome)(output=1, failure=None, usage=usage) == Outcome(1, None, usage)


def test_missing_or_unknown_arguments_fail_as_in_the_constructor() -> None:
    build = slot_constructor(TaskFailed)
    with pytest.raises(TypeError):
        build(task_id="t")
    with pytest.raises(TypeError):
        slot_constructor(TaskUsage)(tokens=1)


def test_classes_it_cannot_build_the_same_way_get_their_own_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class Plain:
        n: int

    assert slot_constructor(Checked) is Checked
    assert slot_constructor(Listed) is Listed
    assert slot_constructor(Plain) is Plain
