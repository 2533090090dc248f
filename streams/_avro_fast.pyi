"""Type stub of the Cython extension ``agentlog.streams._avro_fast`` (see ``_avro_fast.pyx``)."""

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from typing_extensions import disjoint_base

@disjoint_base
class Type:
    def __init__(
        self, kind: str, inner: Type | Record | None = None, null_index: int = 0, min_item: int = 0
    ) -> None: ...

@disjoint_base
class Record:
    @property
    def name(self) -> str: ...
    def __init__(self, name: str, cls: type) -> None: ...
    def set_fields(self, fields: list[tuple[str, Type]]) -> None: ...

class FieldError(Exception):
    record: str
    field: str | None
    value: Any
    error: Exception
    def __init__(self, record: str, field: str | None, value: Any, error: Exception) -> None: ...

def configure(
    *,
    truncated: type[Exception],
    corrupt: type[Exception],
    dumps: Callable[[Any], str],
    loads: Callable[[str], Any],
    utc: tzinfo,
    timestamp_of: Callable[[int], datetime],
    slow: Mapping[str, Callable[[bytearray, Any], None]],
) -> None: ...
def encode(record: Record, header: bytes, value: Any) -> bytes: ...
def decode(record: Record, data: bytes, start: int, end: int) -> tuple[Any, int]: ...

@disjoint_base
class Codec:
    def __init__(self) -> None: ...
    def add(self, record: Record, header: bytes, name: str) -> None: ...
    def encode(self, value: object) -> bytes | None: ...
    def decode(self, data: object) -> Any: ...

def json_dumps(value: Any) -> str: ...
def json_loads(data: bytes) -> Any: ...
def murmur2(data: bytes) -> int: ...
