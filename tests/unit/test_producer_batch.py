"""EventProducer.enqueue_batch's pure parts: partition choice and per-event acknowledgements."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from agentlog.settings import MAX_REQUEST_BYTES
from agentlog.streams.producer import (
    _CHECK_SIZE_ABOVE,
    BatchMetadata,
    _group_by_partition,
    _resolve_when_acked,
    _with_traceparent,
)


@given(st.lists(st.binary(max_size=12), max_size=40), st.integers(1, 12))
def test_partitions_are_those_aiokafka_send_would_choose(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    grouped = _group_by_partition([(k, b"v", []) for k in keys], partitions)
    chosen = {index: p for p, indexes in grouped.items() for index in indexes}
    assert sorted(chosen) == list(range(len(keys)))
    for index, key in enumerate(keys):
        assert chosen[index] == DefaultPartitioner()(key, partitions, partitions)
    for indexes in grouped.values():
        assert indexes == sorted(indexes)  # the order of the call, per partition


def test_traceparent_header_is_added_once() -> None:
    tp = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert _with_traceparent(None, None) is None
    assert _with_traceparent([("a", b"1")], None) == [("a", b"1")]
    assert _with_traceparent(None, tp) == [("traceparent", tp.encode())]
    assert _with_traceparent([("traceparent", b"x")], tp) == [("traceparent", b"x")]


def test_a_traceparent_that_is_not_ascii_gets_no_header_instead_of_an_error() -> None:
    assert _with_traceparent(None, "00-é-\ud800") is None
    assert _with_traceparent([("a", b"1")], "00-é") == [("a", b"1")]


def _ack(topic: str, partition: int, offset: int, timestamp: int) -> RecordMetadata:
    return RecordMetadata(
        topic, partition, TopicPartition(topic, partition), offset, timestamp, 0, 0
    )


async def test_acknowledgements_become_per_event_metadata_in_call_order() -> None:
    loop = asyncio.get_running_loop()
    first, second, third = (loop.create_future() for _ in range(3))
    result: asyncio.Future[Sequence[RecordMetadata]] = loop.create_future()
    # events 0, 2, 3 went to partition 1 in two batches; event 1 to partition 0
    acks = [(first, [(0, 0, 10), (2, 1, 11)]), (second, [(3, 0, 12)]), (third, [(1, 0, 13)])]
    _resolve_when_acked(result, acks, 4)
    first.set_result(_ack("t", 1, 100, -1))
    second.set_result(_ack("t", 1, 102, -1))
    await asyncio.sleep(0)
    assert not result.done()
    third.set_result(_ack("t", 0, 7, 555))  # a LogAppendTime topic: the broker's time
    got = await result
    assert [(m.partition, m.offset, m.timestamp, m.timestamp_type) for m in got] == [
        (1, 100, 10, 0),
        (0, 7, 555, 1),
        (1, 101, 11, 0),
        (1, 102, 12, 0),
    ]


async def test_a_failed_batch_fails_the_whole_call() -> None:
    loop = asyncio.get_running_loop()
    ok, failed, cancelled = (loop.create_future() for _ in range(3))
    result: asyncio.Future[Sequence[RecordMetadata]] = loop.create_future()
    _resolve_when_acked(result, [(ok, [(0, 0, 1)]), (failed, [(1, 0, 1)]), (cancelled, [])], 2)
    ok.set_result(_ack("t", 0, 1, -1))
    failed.set_exception(KafkaTimeoutError())
    cancelled.cancel()
    with pytest.raises(KafkaTimeoutError):
        await result
    await asyncio.sleep(0)  # every callback ran and retrieved its future's outcome


@pytest.mark.parametrize("key_len", [0, 36, 1000])
def test_records_the_exact_size_check_skips_fit_a_request(key_len: int) -> None:
    # enqueue_batch skips the exact size for headerless records up to this many key and
    # value bytes: the largest such record, with the largest varints, must still fit
    value = b"x" * (_CHECK_SIZE_ABOVE - key_len)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k" * key_len, value, [])
    assert size <= MAX_REQUEST_BYTES


def test_batch_metadata_is_a_sequence_built_on_first_read() -> None:
    loop = asyncio.new_event_loop()
    try:
        first, second = loop.create_future(), loop.create_future()
        first.set_result(_ack("t", 1, 100, -1))
        second.set_result(_ack("t", 0, 7, -1))
        metadata = BatchMetadata([(first, [(0, 0, 10), (2, 1, 11)]), (second, [(1, 0, 12)])], 3)
        assert metadata._items is None
        assert len(metadata) == 3
        assert [m.offset for m in metadata] == [100, 7, 101]
        assert metadata[-1].offset == 101
        assert [m.offset for m in metadata[:2]] == [100, 7]
        assert metadata == list(metadata)
        assert metadata not in ([], "abc")
        with pytest.raises(IndexError):
            metadata[3]
        assert BatchMetadata([], 0) == []
        assert not BatchMetadata([], 0)
    finally:
        loop.close()
