from collections.abc import Callable
from datetime import datetime
from typing import Any

MISSING: object

class SlotFiller:
    cls: type
    names: tuple[str, ...]
    def __init__(self, cls: type, names: tuple[str, ...]) -> None: ...
    def fill(self, obj: object, values: tuple[Any, ...]) -> None: ...
    def copy(self, obj: object, changes: dict[str, Any]) -> Any: ...

def install_init(
    cls: type,
    names: tuple[str, ...],
    positional: tuple[int, ...],
    defaults: tuple[object, ...],
    factories: tuple[Callable[[], object] | None, ...],
    python_init: Callable[..., None],
) -> None: ...
def utc_now() -> datetime: ...
def utc_from_unix(seconds: int, microseconds: int) -> datetime: ...
