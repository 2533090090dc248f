"""Constructors that fill a frozen dataclass's slots directly.

A frozen dataclass's generated ``__init__`` sets every field through
``object.__setattr__`` (its own ``__setattr__`` refuses), which costs a few
times what storing the slot does. Every event, envelope and usage record the
engine makes goes through one, many per workflow step, so
:func:`install_slot_init` replaces it with an ``__init__`` that has the same
parameters (names, order, keyword-only marker, defaults, default factories)
and stores the arguments into the slots: in one call of the compiled
:class:`~agentlog.schemas._slots.SlotFiller` when that extension is built, else
through each slot's descriptor. Instances are the same; ``dataclasses.replace``
and ``cls(**kwargs)`` go through the new ``__init__``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

try:  # schemas/_slots.pyx: the slots filled in one C call (~4x cheaper per event)
    from agentlog.schemas._slots import SlotFiller
except ImportError:  # built without a C compiler: descriptor calls
    SlotFiller = None  # type: ignore[assignment,misc]


def install_slot_init(cls: type[T], *, compiled: bool = True) -> type[T]:
    """Give ``cls`` an ``__init__`` that fills its slots directly; returns ``cls``.

    ``compiled=False`` uses the descriptor calls even when the extension is built
    (the tests compare the two).

    Raises:
        TypeError: ``cls`` is not a dataclass with slots, defines ``__post_init__``
            or has a field outside ``__init__`` (the fast constructor would skip them).
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a dataclass with slots=True")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} defines __post_init__, which a slot __init__ would skip")
    fields = dataclasses.fields(cls)
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    names: list[str] = []
    for f in fields:
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name} has init=False")
        name = f.name
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            param = f"{name}=_default_{name}"
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            param = f"{name}=_MISSING"
            body.append(f"    if {name} is _MISSING: {name} = _factory_{name}()")
        else:
            param = name
        (keyword if f.kw_only else positional).append(param)
        names.append(name)
    if compiled and SlotFiller is not None and names:
        namespace["_fill"] = SlotFiller(cls, tuple(names)).fill
        body.append(f"    _fill(self, ({', '.join(names)},))")
    else:
        body.extend(f"    _set_{name}(self, {name})" for name in names)
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = "\n".join([f"def __init__({params}):", *(body or ["    pass"])])
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Build a {cls.__name__}, filling its slots directly."
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
