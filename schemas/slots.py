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
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

try:  # schemas/_slots.pyx: arguments bound and slots filled in C
    from agentlog.schemas import _slots
except ImportError:  # built without a C compiler: the generated Python __init__ alone
    _slots = None  # type: ignore[assignment]


def install_slot_init(cls: type[T], *, compiled: bool = True) -> type[T]:
    """Give ``cls`` an ``__init__`` that fills its slots directly; returns ``cls``.

    With the extension built, ``cls(...)`` also binds its arguments in C
    (``_slots.install_init``) and leaves every unusual call (a missing, unknown or
    repeated argument) to the generated Python ``__init__``, which stays
    ``cls.__init__``. ``compiled=False`` uses neither, only the descriptor calls
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
    if bad := [f.name for f in fields if not f.init]:
        raise TypeError(f"{cls.__name__}.{bad[0]} has init=False")
    names = [f.name for f in fields]
    use_c = compiled and _slots is not None and bool(names)
    init = _python_init(cls, fields, _slots.SlotFiller(cls, tuple(names)) if use_c else None)
    cls.__init__ = init  # type: ignore[method-assign]
    if use_c:  # cls(...) binds in C; anything unusual goes to ``init``
        missing = _slots.MISSING
        _slots.install_init(
            cls,
            tuple(names),
            tuple(i for i, f in enumerate(fields) if not f.kw_only),
            tuple(missing if f.default is dataclasses.MISSING else f.default for f in fields),
            tuple(
                None if f.default_factory is dataclasses.MISSING else f.default_factory
                for f in fields
            ),
            init,
        )
    return cls


def _python_init(
    cls: type, fields: tuple[dataclasses.Field[Any], ...], filler: Any | None
) -> Callable[..., None]:
    """The generated ``__init__``: one ``filler.fill`` call, or else a descriptor call per field."""
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
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
    if filler is not None:
        namespace["_fill"] = filler.fill
        body.append(f"    _fill(self, ({', '.join(f.name for f in fields)},))")
    else:
        body.extend(f"    _set_{f.name}(self, {f.name})" for f in fields)
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = "\n".join([f"def __init__({params}):", *(body or ["    pass"])])
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own field names
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Build a {cls.__name__}, filling its slots directly."
    return init
