"""``replace`` for the core's frozen, slotted value types, without ``dataclasses.replace``'s cost.

``evolve`` copies a state or event with a few changed fields for every journal
event; ``dataclasses.replace`` re-runs ``__init__`` with every field and costs
about a quarter of the core's CPU per step. The values here have no
``__post_init__`` and no ``init=False`` fields, so copying the slots is the
same thing. With the ``agentlog.schemas._slots`` extension built, the copy
is made in C (:meth:`SlotFiller.copy`: the old slots, then the changes, ~5x
faster); else, and for whatever the compiled copy leaves (an instance of a
subclass, an unset slot, an unknown field), each class gets a copier
generated once (as ``dataclasses`` generates ``__init__``): one line per field
that reads the old value or the change and fills the new object's slot
through its descriptor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

try:  # schemas/_slots.pyx: the copy made in C
    from agentlog.schemas import _slots
except ImportError:  # built without a C compiler: the generated copiers alone
    _slots = None  # type: ignore[assignment]

T = TypeVar("T")

_Copier = Callable[[Any, Any], Any]  # (instance, changes) -> copy
#: class -> (compiled copy or None, generated copier, field names)
_Entry = tuple[_Copier | None, _Copier, frozenset[str]]
_COPIERS: dict[type, _Entry] = {}


def _copier_of(cls: type) -> _Entry:
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
            namespace[f"_s{i}"] = getattr(cls, name).__set__  # the slot's member descriptor
            # the change if there is one, else the old value (names are identifiers)
            lines.append(f"    _s{i}(n, c[{name!r}] if {name!r} in c else o.{name})")
        lines.append("    return n")
        exec("\n".join(lines), namespace)  # noqa: S102 - generated from the class's own field names
        compiled = _slots.SlotFiller(cls, tuple(names)).copy if _slots is not None else None
        entry: _Entry = (compiled, namespace["_copy"], frozenset(names))
        _COPIERS[cls] = entry
        return entry
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes``, like :func:`dataclasses.replace`.

    Raises:
        TypeError: ``obj`` is not a slotted dataclass, or a change names no field.
    """
    compiled, _, _ = _COPIERS.get(type(obj)) or _copier_of(type(obj))
    if compiled is not None:
        new: T = compiled(obj, changes)
        if new is not NotImplemented:
            return new
    return python_replace(obj, **changes)


def python_replace(obj: T, /, **changes: Any) -> T:
    """:func:`replace` without the compiled copy (the tests hold the two equal)."""
    _, copy, names = _copier_of(type(obj))
    if not names.issuperset(changes):
        unknown = sorted(set(changes) - names)
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(unknown)}")
    new: T = copy(obj, changes)
    return new
