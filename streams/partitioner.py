"""Kafka's default partitioner: the partition of a keyed record.

``murmur2(key) & 0x7fffffff % partitions``: the Java client's
``Utils.toPositive(Utils.murmur2(key)) % numPartitions``, which aiokafka's
default partitioner and librdkafka's ``murmur2_random`` also use, so a record
keyed by a workflow id lands on the same partition whoever produces it.

aiokafka's ``murmur2`` is pure Python (~13 us for a UUID-sized key); every
task, answer and forwarded input hashes its key, so the compiled one of the
codec extension (``agentlog.streams._avro_fast.murmur2``, ~0.1 us) is used
when it is built, and otherwise aiokafka's behind a bounded cache.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

from aiokafka.partitioner import murmur2 as python_murmur2

_POSITIVE = 0x7FFFFFFF

_compiled: Callable[[bytes], int] | None
try:
    from agentlog.streams._avro_fast import murmur2 as _compiled
except ImportError:  # built without a C compiler
    _compiled = None

#: Kafka's murmur2 of a key (unsigned 32 bits).
murmur2: Callable[[bytes], int] = (
    _compiled if _compiled is not None else functools.lru_cache(maxsize=1 << 16)(python_murmur2)
)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions`` (0..n-1).

    Raises:
        ValueError: ``partitions`` is less than 1.
    """
    if partitions < 1:
        raise ValueError(f"partitions={partitions}: a topic has at least one partition")
    return (murmur2(key) & _POSITIVE) % partitions


def default_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's ``DefaultPartitioner`` on this module's murmur2 (for its producer's partitioner=).

    A keyless record goes to a random available partition (any, if none is), as there.
    """
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 - spreading load, not secrets
    return all_partitions[partition_of(key, len(all_partitions))]
