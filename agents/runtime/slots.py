"""Cheaper constructors for the frozen dataclasses the runtime builds once or more per task.

A frozen dataclass ``__init__`` sets each field through ``object.__setattr__``,
which costs a few times what setting the slot itself does; the pool builds an
``Outcome``, a ``TaskUsage`` and a ``TaskCompleted`` for every task.
:func:`slot_constructor` makes a function with the same keyword arguments and
defaults that fills the slots directly (as ``agentlog.schemas.events`` does for
envelopes). Classes it cannot build the same way (a ``__post_init__``, a
``default_factory``, no slots) get their own constructor back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def slot_constructor(cls: type[T]) -> Callable[..., T]:
    """A function that builds ``cls`` from keyword arguments as ``cls(**kwargs)`` would.

    Args:
        cls: a frozen dataclass with slots.

    Returns:
        the generated constructor, or ``cls`` itself when it has a
        ``__post_init__``, a field with a ``default_factory`` or without
        ``init``, or no slots.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    plain = all(
        f.init and f.default_factory is dataclasses.MISSING and f.name in cls.__dict__
        for f in fields
    )
    if not plain or hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__:
        return cls
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, body = [], []
    for f in fields:
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(obj, {f.name})")
    source = "\n".join(
        [f"def build(*, {', '.join(params)}):", "    obj = _new(_cls)", *body, "    return obj"]
    )
    exec(source, namespace)  # noqa: S102 - generated from the dataclass's own field names
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = build.__name__ = f"new_{cls.__name__}"
    build.__doc__ = f"``{cls.__name__}(**kwargs)``, filling its slots directly."
    return build
