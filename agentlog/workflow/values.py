"""``replace`` for the core's frozen, slotted value types, without ``dataclasses.replace``'s cost.

``evolve`` copies a state or event with a few changed fields for every journal
event; ``dataclasses.replace`` re-runs ``__init__`` with every field and costs
about a quarter of the core's CPU per step. The values here have no
``__post_init__`` and no ``init=False`` fields, so copying the slots is the
same thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_of(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} is not a slotted dataclass")
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has __post_init__; use dataclasses.replace")
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes``, like :func:`dataclasses.replace`.

    Raises:
        TypeError: ``obj`` is not a slotted dataclass, or a change names no field.
    """
    cls = type(obj)
    new = object.__new__(cls)
    set_field = object.__setattr__
    used = 0
    for name in _fields_of(cls):
        if name in changes:
            set_field(new, name, changes[name])
            used += 1
        else:
            set_field(new, name, getattr(obj, name))
    if used != len(changes):
        unknown = sorted(set(changes) - set(_fields_of(cls)))
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    return new
