"""Which partition a workflow lives on, and which partitions a member really owns.

``requests``, ``journal`` and ``responses`` are co-partitioned: a workflow's
events sit on partition ``partition_for(workflow_id, n)`` of all three, the
partition the Java client, aiokafka and librdkafka's ``murmur2_random``
partitioner pick for the key. An orchestrator member processes partition ``p``
only when the group gave it ``p`` of both input topics (:func:`co_owned`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.structs import TopicPartition

from agentlog.streams.partitioner import partition_of


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``.

    ``murmur2(key) & 0x7fffffff % partitions``: the Java client's
    ``Utils.toPositive(Utils.murmur2(key)) % numPartitions``, which aiokafka's
    default partitioner also uses.

    Raises:
        ValueError: ``partitions`` is less than 1.
    """
    return partition_of(key.encode("utf-8") if isinstance(key, str) else key, partitions)


@dataclass(frozen=True, slots=True)
class Ownership:
    """What an assignment of ``requests`` + ``responses`` partitions lets a member process.

    Attributes:
        owned: partition numbers assigned on both topics: this member is their
            single writer.
        partial: partition numbers assigned on one topic only: never processed
            (the other half belongs to another member; a range assignor with
            equal partition counts never does this).
    """

    owned: frozenset[int]
    partial: frozenset[int]


def co_owned(assigned: Iterable[TopicPartition], requests: str, responses: str) -> Ownership:
    """Split an assignment into fully owned and half-owned partition numbers.

    Args:
        assigned: the topic-partitions the group gave this member.
        requests: the full name of the requests topic.
        responses: the full name of the responses topic.
    """
    by_topic: dict[str, set[int]] = {requests: set(), responses: set()}
    for tp in assigned:
        if tp.topic in by_topic:
            by_topic[tp.topic].add(tp.partition)
    both = by_topic[requests] & by_topic[responses]
    either = by_topic[requests] | by_topic[responses]
    return Ownership(frozenset(both), frozenset(either - both))
