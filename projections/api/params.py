"""Parameter handling shared by the routes: cursors, times, and 422s that name the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema


class InvalidParameter(Exception):
    """A parameter whose value is well-formed for its type but still not usable (-> 422)."""

    def __init__(self, where: str, name: str, value: object, message: str) -> None:
        self.where = where
        self.name = name
        self.value = value
        self.message = message
        super().__init__(f"{where}.{name}: {message}")

    def body(self) -> dict[str, Any]:
        """The FastAPI validation-error shape: ``loc`` names the field."""
        return {
            "detail": [
                {
                    "type": "value_error",
                    "loc": [self.where, self.name],
                    "msg": self.message,
                    "input": self.value if isinstance(self.value, str | int | None) else None,
                }
            ]
        }


#: The longest agent kind a filter accepts.
KIND_MAX_LENGTH = 64

#: A keyset cursor: microseconds since the epoch, a dot, then the row's key verbatim.
#: Every string matching it is a valid cursor (so the schema says all there is to say).
TIME_CURSOR = r"^(?:[0-9]{1,17}|-[0-9]{1,16})\.[\s\S]*$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(moment: datetime, key: str) -> str:
    """The cursor after the row (``moment``, ``key``) of a list ordered by both."""
    delta = moment - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}.{key}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(moment, key) of a cursor matching :data:`TIME_CURSOR` (FastAPI checked the pattern)."""
    micros, _, key = cursor.partition(".")
    return _EPOCH + timedelta(microseconds=int(micros)), key


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: object) -> object:
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError("not an RFC 3339 date-time with an offset, e.g. 2025-01-02T03:04:05Z")
        text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
        fraction = re.search(r"\.(\d+)", text)
        if fraction and len(fraction[1]) > 6:  # Python keeps microseconds
            text = text.replace(fraction[0], "." + fraction[1][:6])
        return datetime.fromisoformat(text)
    return value


#: A query time: RFC 3339 with an offset only (no Unix numbers, no bare dates).
Rfc3339 = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def aware(moment: datetime) -> datetime:
    """``moment`` with UTC assumed when it has no offset."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_time(name: str, value: datetime | None) -> datetime | None:
    """A query time as an aware UTC datetime, or a 422 naming ``name`` if out of range."""
    if value is None:
        return None
    try:
        return aware(value).astimezone(UTC)
    except (OverflowError, ValueError) as e:
        raise InvalidParameter("query", name, value.isoformat(), f"out of range: {e}") from None
