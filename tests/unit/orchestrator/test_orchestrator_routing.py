"""Partition mapping and co-ownership: pure helpers of the orchestrator runner."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from agentlog.agents.orchestrator import co_owned, partition_for

#: org.apache.kafka.common.utils.UtilsTest#testMurmur2: Java's murmur2 of these keys.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
def test_partition_for_is_javas_to_positive_murmur2_modulo(key: bytes, java: int) -> None:
    for partitions in (1, 3, 6, 12, 100):
        assert partition_for(key, partitions) == (java & 0x7FFFFFFF) % partitions


def test_partition_for_matches_the_producers_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for partitions in (1, 2, 3, 6, 7, 64):
        every = list(range(partitions))
        for _ in range(200):
            key = f"wf-{uuid.uuid4()}"
            assert partition_for(key, partitions) == partitioner(key.encode(), every, every)


def test_partition_for_encodes_text_as_utf8() -> None:
    assert partition_for("ünïcode-wf", 6) == partition_for("ünïcode-wf".encode(), 6)


def test_partition_for_refuses_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions=0"):
        partition_for("wf", 0)


def test_co_owned_keeps_partitions_assigned_on_both_input_topics() -> None:
    assigned = {
        TopicPartition("p.requests", 0),
        TopicPartition("p.responses", 0),
        TopicPartition("p.requests", 1),
        TopicPartition("p.responses", 2),
        TopicPartition("p.other", 3),
    }
    ownership = co_owned(assigned, "p.requests", "p.responses")
    assert ownership.owned == {0}
    assert ownership.partial == {1, 2}


class _Cluster(ClusterMetadata):  # type: ignore[misc]
    def __init__(self, partitions: dict[str, int]) -> None:
        super().__init__()
        self._counts = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self._counts[topic]))


def _assign(assignor: type, members: int, partitions: int) -> dict[str, set[TopicPartition]]:
    topics = ["requests", "responses"]
    metadata = {
        f"member-{i}": ConsumerProtocolMemberMetadata(0, topics, b"") for i in range(members)
    }
    result = assignor.assign(_Cluster(dict.fromkeys(topics, partitions)), metadata)
    return {
        member: {TopicPartition(t, p) for t, ps in a.assignment for p in ps}
        for member, a in result.items()
    }


@pytest.mark.parametrize(("members", "partitions"), [(1, 6), (2, 6), (3, 6), (4, 6), (5, 3)])
def test_the_range_assignor_gives_each_member_p_of_both_topics(
    members: int, partitions: int
) -> None:
    owned: list[int] = []
    for assigned in _assign(RangePartitionAssignor, members, partitions).values():
        ownership = co_owned(assigned, "requests", "responses")
        assert ownership.partial == set()
        owned += ownership.owned
    assert sorted(owned) == list(range(partitions))


def test_the_default_round_robin_assignor_would_split_co_partitioned_topics() -> None:
    """Why the runner sets the range assignor: aiokafka's default breaks co-partitioning."""
    partial = set()
    for assigned in _assign(RoundRobinPartitionAssignor, 2, 3).values():
        partial |= co_owned(assigned, "requests", "responses").partial
    assert partial
