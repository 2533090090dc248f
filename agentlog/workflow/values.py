"""``replace`` for the core's frozen, slotted value types, without ``dataclasses.replace``'s cost.

``evolve`` copies a state or event with a few changed fields for every journal
event; ``dataclasses.replace`` re-runs ``__init__`` with every field and costs
about a quarter of the core's CPU per step. The values here have no
``__post_init__`` and no ``init=False`` fields, so copying the slots is the
same thing. Each class gets a copier generated once (as ``dataclasses``
generates ``__init__``): one line per field that reads the old value or the
change and fills the new object's slot through its descriptor, several times
faster than a loop of ``getattr``/``object.__setattr__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_Copier = Callable[[Any, Mapping[str, Any]], Any]
_COPIERS: dict[type, tuple[_Copier, frozenset[str]]] = {}


def _copier_of(cls: type) -> tuple[_Copier, frozenset[str]]:
    found = _COPIERS.get(cls)
    if found is None:
        if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} is not a slotted dataclass")
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has __post_init__; use dataclasses.replace")
        names = [f.name for f in dataclasses.fields(cls)]
        namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
        lines = ["def _copy(o, c):", "    n = _new(_cls)"]
        for i, name in enumerate(names):
            namespace[f"_s{i}"] = cls.__dict__[name].__set__  # the slot's member descriptor
            # the change if there is one, else the old value (names are identifiers)
            lines.append(f"    _s{i}(n, c[{name!r}] if {name!r} in c else o.{name})")
        lines.append("    return n")
        exec("\n".join(lines), namespace)  # noqa: S102 - generated from the class's own field names
        found = (namespace["_copy"], frozenset(names))
        _COPIERS[cls] = found
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes``, like :func:`dataclasses.replace`.

    Raises:
        TypeError: ``obj`` is not a slotted dataclass, or a change names no field.
    """
    copy, names = _copier_of(type(obj))
    if not names.issuperset(changes):
        unknown = sorted(set(changes) - names)
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(unknown)}")
    new: T = copy(obj, changes)
    return new
