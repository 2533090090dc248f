"""storable(): U+0000 replaced in every string of an event, nothing else changed."""

from __future__ import annotations

from agentlog.projections.records import Record, storable
from tests.support.samples import sample_event


def test_every_nul_is_replaced_in_nested_strings_keys_and_the_envelope() -> None:
    event = sample_event(
        "TaskCompleted",
        workflow_id="wf-\x00",
        output={"a\x00": ["x\x00y", 1, None, {"b": "\x00"}], "n": 2.5},
    )
    record = Record("t", 1, 7, 99, event)
    clean = storable(record)
    assert (clean.topic, clean.partition, clean.offset, clean.timestamp_ms) == ("t", 1, 7, 99)
    assert clean.event.workflow_id == "wf-\ufffd"  # type: ignore[attr-defined]
    assert clean.event.output == {"a\ufffd": ["x\ufffdy", 1, None, {"b": "\ufffd"}], "n": 2.5}  # type: ignore[attr-defined]
    assert clean.event.envelope.event_id == event.envelope.event_id
    assert "\x00" not in clean.event.envelope.key
    assert "\x00" not in repr(clean.event)


def test_an_event_without_nul_comes_back_equal() -> None:
    event = sample_event("TaskRequested")
    assert storable(Record("t", 0, 0, 0, event)).event == event
