"""The core's fast ``replace`` is ``dataclasses.replace`` for its frozen slotted values."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.schemas.events import new_envelope
from agentlog.workflow import values
from agentlog.workflow.values import python_replace, replace

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
    for fn in (replace, python_replace):
        copy = fn(original, **changes)
        assert copy == dataclasses.replace(original, **changes)
        assert type(copy) is Sample
        assert original == Sample(a=a, b=b, c=c)  # untouched


def test_the_compiled_copy_is_active_and_leaves_what_it_cannot_do_to_python() -> None:
    compiled, _, _ = values._copier_of(Sample)
    if values._slots is None:
        pytest.skip("agentlog.schemas._slots is not built")
    assert compiled is not None
    assert compiled(Sample(a=1), {"b": "y"}) == Sample(a=1, b="y")
    assert compiled(Sample(a=1), {"d": 2}) is NotImplemented  # unknown: Python names it

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(Sample):
        d: int = 0

    assert compiled(Sub(a=1), {}) is NotImplemented  # another class, other slots
    assert replace(Sub(a=1, d=4), b="z") == Sub(a=1, b="z", d=4)
    empty = object.__new__(Sample)  # no slot set
    assert compiled(empty, {"a": 1}) is NotImplemented
    with pytest.raises(AttributeError):
        replace(empty, a=1)


def test_the_compiled_copy_holds_its_own_references() -> None:
    import sys

    value = object()
    before = sys.getrefcount(value)
    copies = [replace(Sample(a=1), c=value) for _ in range(10)]  # type: ignore[arg-type]
    assert sys.getrefcount(value) == before + 10
    del copies
    assert sys.getrefcount(value) == before


@pytest.mark.parametrize("fn", [replace, python_replace])
def test_replace_rejects_an_unknown_field_and_non_slotted_values(fn: Any) -> None:
    with pytest.raises(TypeError, match="Sample has no field d"):
        fn(Sample(a=1), d=2)

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    with pytest.raises(TypeError, match="not a slotted dataclass"):
        fn(Plain(a=1), a=2)


def test_replace_works_on_event_values() -> None:
    envelope = new_envelope("TaskCompleted", "wf-1", source="test")
    assert replace(envelope, key="wf-2") == dataclasses.replace(envelope, key="wf-2")


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_partition_for_is_the_murmur2_partition_cached_or_not(key: str, partitions: int) -> None:
    expected = (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected
    assert partition_for(key, partitions) == expected  # from the cache
    assert partition_for(key.encode("utf-8"), partitions) == expected
