"""The compiled murmur2 and the partitioner on it pick what aiokafka's pure-Python ones pick."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import example, given
from hypothesis import strategies as st

from agentlog.agents.orchestrator.routing import partition_for
from agentlog.streams import partitioner
from agentlog.streams.partitioner import default_partitioner, murmur2, partition_of

pytestmark = pytest.mark.unit


def test_the_compiled_murmur2_is_active() -> None:
    if partitioner._compiled is None:
        pytest.skip("agentlog.streams._avro_fast is not built")
    assert murmur2 is partitioner._compiled


@given(st.binary(max_size=300))
@example(b"")
@example(b"a")
@example(b"ab")
@example(b"abc")
@example(b"abcd")
@example(b"\xff" * 7)
def test_murmur2_equals_aiokafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)
    assert 0 <= murmur2(key) < 2**32


@pytest.mark.parametrize(
    ("key", "expected"),
    # Kafka's own test vectors (Java client's UtilsTest.testMurmur2), as unsigned values
    [
        (b"21", -973932308 & 0xFFFFFFFF),
        (b"foobar", -790332482 & 0xFFFFFFFF),
        (b"a-little-bit-long-string", -985981536 & 0xFFFFFFFF),
        (b"a-little-bit-longer-string", -1486304829 & 0xFFFFFFFF),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971 & 0xFFFFFFFF),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_clients_test_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=128))
def test_the_partitioner_picks_aiokafkas_partition(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert default_partitioner(key, partitions, partitions) == expected
    assert partition_of(key, count) == expected
    assert partition_for(key, count) == expected


def test_keyless_records_go_to_an_available_partition() -> None:
    assert {default_partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert default_partitioner(None, [0, 1, 2], []) in {0, 1, 2}


def test_partition_of_refuses_a_topic_without_partitions() -> None:
    with pytest.raises(ValueError, match="partitions=0"):
        partition_of(b"k", 0)
