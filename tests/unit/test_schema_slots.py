"""Slot-filling __init__s build what dataclass __init__s build; compiled ids equal Python ones."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agentlog.schemas.events as ev
from agentlog.schemas.slots import install_slot_init


@dataclass(frozen=True, slots=True, kw_only=True)
class _Sample:
    a: int
    b: str = "b"
    c: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Mixed:
    x: int
    y: int = 2
    z: int = field(default=3, kw_only=True)


def test_the_fast_init_keeps_defaults_factories_and_errors() -> None:
    plain = _Sample(a=1)
    install_slot_init(_Sample)
    fast = _Sample(a=1)
    assert fast == plain
    assert _Sample(a=1).c is not _Sample(a=1).c  # a fresh dict per instance
    assert _Sample(a=1, b="x", c={"k": 1}) == _Sample(c={"k": 1}, b="x", a=1)
    with pytest.raises(TypeError, match="'a'"):
        _Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Sample(1)  # type: ignore[misc]  # keyword-only stays keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    assert dataclasses.replace(fast, b="y") == _Sample(a=1, b="y")


def test_positional_and_keyword_only_fields_keep_their_places() -> None:
    install_slot_init(_Mixed)
    assert _Mixed(1) == _Mixed(x=1, y=2, z=3)
    assert (_Mixed(1, 5, z=7).x, _Mixed(1, 5, z=7).y, _Mixed(1, 5, z=7).z) == (1, 5, 7)
    with pytest.raises(TypeError):
        _Mixed(1, 2, 3)  # type: ignore[misc]


def test_classes_it_cannot_serve_are_refused() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="slots"):
        install_slot_init(NoSlots)
    with pytest.raises(TypeError, match="__post_init__"):
        install_slot_init(WithPostInit)


def test_every_event_class_has_the_fast_init() -> None:
    for cls in (*ev.EVENT_TYPES.values(), *ev.NESTED_RECORD_TYPES.values()):
        assert cls.__init__.__doc__ == f"Build a {cls.__name__}, filling its slots directly."


@given(st.binary(min_size=16, max_size=16), st.sampled_from([0x40, 0x50]))
def test_compiled_uuid_text_equals_the_python_one(raw: bytes, version: int) -> None:
    expected = str(uuid.UUID(bytes=raw, version=version >> 4))
    assert ev._py_uuid_text(raw, version) == expected
    assert ev._uuid_text(raw, version) == expected


def test_random_ids_are_uuid4_and_distinct() -> None:
    ids = {ev.random_event_id() for _ in range(2000)}  # crosses several 4 KiB refills
    assert len(ids) == 2000
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert uuid.UUID(ev._py_random_event_id()).version == 4


def test_a_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    import multiprocessing

    ev.random_event_id()  # the buffer now holds bytes the parent will use next
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    child = context.Process(target=lambda: queue.put(ev.random_event_id()))
    child.start()
    child.join(10)
    assert queue.get() != ev.random_event_id()
