"""Faust apps can read and write agentlog events through the registered codec."""

from __future__ import annotations

from faust.serializers import codecs

from agentlog.streams.codec import AvroCodec
from agentlog.streams.faust_codec import CODEC_NAME, register
from tests.support.samples import sample_event


def test_registered_codec_round_trips_agentlog_events() -> None:
    register()
    codec = codecs.get_codec(CODEC_NAME)
    event = sample_event("TaskCompleted")
    data = codec.dumps(event)
    assert data == AvroCodec.default().encode(event)
    assert codec.loads(data) == event
