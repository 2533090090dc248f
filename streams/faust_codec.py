"""Interop with Faust apps: agentlog's Avro codec as a Faust codec.

Install the extra (``pip install agentlog[faust]``), then::

    from agentlog.streams.faust_codec import register
    register()  # once, before the Faust app declares topics
    events = app.topic("agentlog.responses", value_serializer="agentlog")

A Faust agent then receives agentlog event dataclasses and can send them.
Remember Faust's 1,500 ms fetch wait (docs/decisions.md, D2) when latency
matters.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from agentlog.streams.codec import AvroCodec

CODEC_NAME = "agentlog"


class FaustAvroCodec(codecs.Codec):
    """A Faust codec that reads and writes agentlog single-object Avro events."""

    def __init__(self, codec: AvroCodec | None = None, **kwargs: Any) -> None:
        """Args:
        codec: the agentlog codec to use (the shared default if None).
        **kwargs: passed to Faust's ``Codec``.
        """
        super().__init__(**kwargs)
        self._codec = codec or AvroCodec.default()

    def _dumps(self, obj: Any) -> bytes:
        return self._codec.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self._codec.decode(s)


def register(name: str = CODEC_NAME) -> None:
    """Register the codec with Faust under ``name`` (idempotent)."""
    codecs.register(name, FaustAvroCodec())
