"""Slot-filling __init__s build what dataclass __init__s build; compiled ids equal Python ones."""

from __future__ import annotations

import dataclasses
import inspect
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import agentlog.schemas.events as ev
from agentlog.schemas import slots
from agentlog.schemas.slots import install_slot_init


def _sample() -> type:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sample:
        a: int
        b: str = "b"
        c: dict[str, int] = field(default_factory=dict)

    return Sample


def _mixed() -> type:
    @dataclass(frozen=True, slots=True)
    class Mixed:
        x: int
        y: int = 2
        z: int = field(default=3, kw_only=True)

    return Mixed


COMPILED = pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])


@COMPILED
def test_the_fast_init_keeps_defaults_factories_and_errors(compiled: bool) -> None:
    sample = _sample()
    plain = sample(a=1)
    install_slot_init(sample, compiled=compiled)
    fast = sample(a=1)
    assert fast == plain
    assert sample(a=1).c is not sample(a=1).c  # a fresh dict per instance
    assert sample(a=1, b="x", c={"k": 1}) == sample(c={"k": 1}, b="x", a=1)
    with pytest.raises(TypeError, match="'a'"):
        sample()
    with pytest.raises(TypeError):
        sample(1)  # keyword-only stays keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2
    assert dataclasses.replace(fast, b="y") == sample(a=1, b="y")


@COMPILED
def test_positional_and_keyword_only_fields_keep_their_places(compiled: bool) -> None:
    mixed = install_slot_init(_mixed(), compiled=compiled)
    assert mixed(1) == mixed(x=1, y=2, z=3)
    assert (mixed(1, 5, z=7).x, mixed(1, 5, z=7).y, mixed(1, 5, z=7).z) == (1, 5, 7)
    with pytest.raises(TypeError):
        mixed(1, 2, 3)


def test_the_compiled_slot_filler_is_active() -> None:
    """CI builds the extension; without it every event costs about 1.5 us more."""
    assert slots._slots is not None, "schemas/_slots.pyx is not built"
    for cls in (*ev.EVENT_TYPES.values(), *ev.NESTED_RECORD_TYPES.values()):
        assert "_fill" in cls.__init__.__globals__, cls.__name__


@COMPILED
def test_unusual_calls_raise_what_the_python_init_raises(compiled: bool) -> None:
    """The compiled __init__ leaves them to the Python one: same errors, same results."""
    mixed = install_slot_init(_mixed(), compiled=compiled)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        mixed()
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        mixed(1, w=2)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        mixed(1, x=2)
    with pytest.raises(TypeError, match="takes from 2 to 3 positional arguments but 4"):
        mixed(1, 2, 3)
    assert mixed(x=1, z=9) == mixed(1, z=9)
    assert mixed.__init__.__name__ == "__init__"  # still the Python function: signatures
    assert str(inspect.signature(mixed)) == "(x, y=2, *, z=3)"

    class Sub(mixed):  # type: ignore[misc,valid-type]
        __slots__ = ()

    assert (Sub(4).x, Sub(4).y, Sub(4, 5, z=6).z) == (4, 2, 6)


@pytest.mark.skipif(slots._slots is None, reason="schemas/_slots.pyx is not built")
def test_the_slot_filler_refuses_what_it_cannot_fill_and_releases_what_it_replaces() -> None:
    assert slots._slots is not None
    sample = _sample()
    with pytest.raises(TypeError, match="nope is not a slot"):
        slots._slots.SlotFiller(sample, ("a", "nope"))
    filler = slots._slots.SlotFiller(sample, ("a", "b", "c"))
    with pytest.raises(TypeError, match="needs a Sample instance, not int"):
        filler.fill(1, (1, "b", {}))
    target = object.__new__(sample)
    with pytest.raises(TypeError, match="takes 3 values, got 2"):
        filler.fill(target, (1, "b"))

    class Tracked:
        pass

    first = Tracked()
    gone = weakref.ref(first)
    filler.fill(target, (1, "b", first))
    del first
    assert gone() is not None  # the slot holds it
    filler.fill(target, (2, "c", {}))
    assert gone() is None  # replaced: released
    assert (target.a, target.b, target.c) == (2, "c", {})


@pytest.mark.skipif(slots._slots is None, reason="schemas/_slots.pyx is not built")
@given(st.integers(min_value=-62_135_596_800, max_value=253_402_300_799), st.integers(0, 999_999))
@example(-1, 999_999)  # 1969-12-31 23:59:59.999999
@example(951_782_400, 0)  # 2000-02-29
@example(-2_203_891_200, 0)  # 1900-03-01 (1900 is no leap year)
@example(253_402_300_799, 999_999)  # the last microsecond a datetime holds
def test_compiled_utc_time_equals_the_python_one(seconds: int, micros: int) -> None:
    """From 0001-01-01 to 9999-12-31, leap years and negative Unix times included."""
    from agentlog.schemas import _slots

    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)
    got = _slots.utc_from_unix(seconds, micros)
    assert got == expected
    assert got.tzinfo is UTC


def test_utc_now_is_the_current_aware_time() -> None:
    before = datetime.now(UTC)
    now = ev.utc_now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after
    assert ev.new_envelope("TaskRequested", "k", source="t").occurred_at.tzinfo is UTC


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


def test_the_python_fallbacks_build_the_same_envelope() -> None:
    built = ev.new_envelope("TaskRequested", "k", source="t", causation_id="c")
    fallback = object.__new__(ev.Envelope)
    ev._py_fill_envelope(fallback, tuple(getattr(built, f.name) for f in dataclasses.fields(built)))
    assert fallback == built
    assert ev._py_utc_now().tzinfo is UTC
