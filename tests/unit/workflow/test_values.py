"""The core's fast ``replace`` is ``dataclasses.replace`` for its frozen slotted values."""

from __future__ import annotations

import dataclasses

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import new_envelope
from agentlog.workflow.values import replace

pytestmark = pytest.mark.unit


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


@given(st.integers(), st.text(), st.lists(st.integers()).map(tuple), st.data())
def test_replace_equals_dataclasses_replace(
    a: int, b: str, c: tuple[int, ...], data: st.DataObject
) -> None:
    original = Sample(a=a, b=b, c=c)
    changes = data.draw(
        st.fixed_dictionaries(
            {}, optional={"a": st.integers(), "b": st.text(), "c": st.just((1, 2))}
        )
    )
    copy = replace(original, **changes)
    assert copy == dataclasses.replace(original, **changes)
    assert type(copy) is Sample
    assert original == Sample(a=a, b=b, c=c)  # untouched


def test_replace_rejects_an_unknown_field_and_non_slotted_values() -> None:
    with pytest.raises(TypeError, match="Sample has no field d"):
        replace(Sample(a=1), d=2)

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    with pytest.raises(TypeError, match="not a slotted dataclass"):
        replace(Plain(a=1), a=2)


def test_replace_works_on_event_values() -> None:
    envelope = new_envelope("TaskCompleted", "wf-1", source="test")
    assert replace(envelope, key="wf-2") == dataclasses.replace(envelope, key="wf-2")


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_partition_for_is_the_murmur2_partition_cached_or_not(key: str, partitions: int) -> None:
    expected = (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected
    assert partition_for(key, partitions) == expected  # from the cache
    assert partition_for(key.encode("utf-8"), partitions) == expected
