"""W3C Trace Context (``traceparent``) carried in Kafka record headers.

Only the ``traceparent`` header is handled; it is enough to stitch a
workflow's hops together in any OpenTelemetry backend without making
OpenTelemetry a dependency.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

HEADER = "traceparent"
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


def new_traceparent(*, sampled: bool = True) -> str:
    """A traceparent that starts a new trace."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span under ``parent``; a new trace if it is absent or invalid."""
    parsed = parse_traceparent(parent) if parent else None
    if parsed is None:
        return new_traceparent()
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """``(trace_id, span_id, flags)`` of a valid version-00 traceparent, else None."""
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    return trace_id, span_id, flags


def traceparent_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The valid traceparent among Kafka record headers, if any."""
    for key, value in headers or ():
        if key == HEADER and value:
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return text if parse_traceparent(text) else None
    return None
