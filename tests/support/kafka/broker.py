"""Real Apache Kafka (KRaft) for tests: one broker, or a cluster you can break.

Usage::

    with KafkaBroker() as kafka:             # one combined controller+broker
        use(kafka.bootstrap)                 # "127.0.0.1:PORT"

    with KafkaCluster(3) as cluster:         # RF 3, min ISR 2, no unclean election
        cluster.kill(0)                      # SIGKILL node 0
        cluster.restart(0)                   # same ports and data, waits until serving
        cluster.pause(1); cluster.resume(1)  # SIGSTOP / SIGCONT

Each node is a JVM running ``kafka.Kafka`` from the Maven Central jars
(:func:`ensure_kafka_jars`) in a private temporary folder, removed on stop. No
JVM outlives the test process: stop() in ``with``/``async with``, an atexit
hook, and the kernel's parent-death signal if Python itself is killed.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Self

from .config import NodeSpec, cluster_properties, kafka_uuid, log_level, write_node_files
from .jars import ensure_kafka_jars, find_java
from .node import KafkaNode, KafkaStartError, wait_all_ready
from .process import free_ports, make_home

logger = logging.getLogger(__name__)

_PORT_ATTEMPTS = 3
_live: set[KafkaCluster] = set()
_live_lock = threading.Lock()


class KafkaCluster:
    """``n`` combined controller+broker KRaft nodes on loopback (static quorum of all ``n``).

    With ``n >= 2``: ``default.replication.factor=n``, ``min.insync.replicas=2``,
    ``unclean.leader.election.enable=false``, internal topics with ``n`` replicas
    and min ISR 2. ``auto.create.topics.enable=false`` as in compose.yaml; pass
    ``settings={"auto.create.topics.enable": "true"}`` to change that or any
    other broker setting.

    Nodes are addressed by index ``0..n-1`` (their ``node.id`` is index + 1).
    Every method is safe to call from any thread; ``start``/``stop``/``restart``
    block, their ``a``-prefixed twins run them in a worker thread.

    Attributes:
        start_seconds: how long the latest :meth:`start` took (jars cached).
    """

    def __init__(
        self,
        n: int = 3,
        *,
        heap: str = "512m",
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_grace: float = 0.0,
    ) -> None:
        """Describe the cluster; nothing runs until :meth:`start` (or ``with``).

        Args:
            n: number of nodes.
            heap: ``-Xmx`` of each broker JVM.
            settings: broker settings added to (or replacing) the defaults.
            start_timeout: seconds allowed for formatting and starting all nodes,
                and for each :meth:`restart`.
            stop_grace: seconds :meth:`stop` waits for a clean shutdown before
                SIGKILL. 0 by default for ``n > 1``: the data is deleted anyway,
                and nodes shutting down together wait on a quorum that is itself
                going away (a 5 s grace is always used up in full).
        """
        if n < 1:
            raise ValueError(f"a Kafka cluster needs at least one node, got n={n}")
        self.n = n
        self.heap = heap
        self.settings = {**cluster_properties(n), **(settings or {})}
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.start_seconds: float | None = None
        self.cluster_id = kafka_uuid()
        self._nodes: list[KafkaNode] = []
        self._home: Path | None = None
        self._state_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Fetch the jars if needed, format and start every node, wait until all serve.

        Idempotent. Returns self.

        Raises:
            KafkaUnavailable: no Java, no Maven, or Maven could not fetch the jars.
            KafkaStartError: a node did not start (the message quotes its log).
        """
        with self._state_lock:
            if self._home is not None:
                return self
            started = time.monotonic()
            jars = ensure_kafka_jars()
            java = find_java()
            self._home = make_home()
            with _live_lock:
                _live.add(self)
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._boot(java, jars, time.monotonic() + self.start_timeout)
                    break
                except KafkaStartError as e:
                    if not e.port_taken or attempt == _PORT_ATTEMPTS:
                        raise
                    logger.info("a Kafka port was taken; retrying with new ports")
                    self._stop_nodes(grace=0.0, final=True)
        except BaseException:
            self.stop(grace=0.0)
            raise
        self.start_seconds = time.monotonic() - started
        logger.info(
            "Kafka %s-node cluster up at %s in %.1f s", self.n, self.bootstrap, self.start_seconds
        )
        return self

    def _boot(self, java: str, jars: Path, deadline: float) -> None:
        assert self._home is not None
        ports = free_ports(2 * self.n)
        # A fresh folder per attempt: a retry after a port clash starts from scratch.
        attempt_home = Path(tempfile.mkdtemp(prefix="attempt-", dir=self._home))
        specs = [
            NodeSpec(i + 1, ports[2 * i], ports[2 * i + 1], attempt_home / f"node-{i + 1}")
            for i in range(self.n)
        ]
        level = log_level()
        for spec in specs:
            write_node_files(spec, specs, self.settings, level)
        self._nodes = [KafkaNode(spec, java, jars, self.heap) for spec in specs]
        _in_parallel([partial(node.format, self.cluster_id, deadline) for node in self._nodes])
        for node in self._nodes:
            node.launch()
        wait_all_ready(self._nodes, deadline)

    def stop(self, grace: float | None = None) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``grace`` s) and delete its files.

        Idempotent. A later :meth:`start` starts a new, empty cluster.
        """
        self._stop_nodes(self.stop_grace if grace is None else grace, final=True)
        with self._state_lock:
            home, self._home = self._home, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        with _live_lock:
            _live.discard(self)

    def _stop_nodes(self, grace: float, *, final: bool) -> None:
        nodes = list(self._nodes)
        for node in nodes:
            node.begin_stop(final=final)
        deadline = time.monotonic() + grace
        for node in nodes:
            node.finish_stop(deadline)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def astart(self) -> Self:
        """:meth:`start` in a worker thread."""
        return await asyncio.to_thread(self.start)

    async def astop(self, grace: float | None = None) -> None:
        """:meth:`stop` in a worker thread."""
        await asyncio.to_thread(self.stop, grace)

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # ------------------------------------------------------------------ addresses

    @property
    def bootstrap(self) -> str:
        """``host:port`` of every node, comma-separated (for ``bootstrap_servers``)."""
        return ",".join(node.bootstrap for node in self._started_nodes())

    @property
    def nodes(self) -> list[KafkaNode]:
        """The nodes, by index."""
        return self._started_nodes()

    @property
    def pids(self) -> list[int]:
        """Pids of every broker JVM launched so far (current and earlier incarnations)."""
        return [pid for node in self._nodes for pid in node.pids]

    def node_index(self, node_id: int) -> int:
        """The index of the node with Kafka ``node.id`` ``node_id``."""
        for i, node in enumerate(self._started_nodes()):
            if node.spec.node_id == node_id:
                return i
        raise ValueError(f"no node with node.id={node_id} in {self.bootstrap}")

    # ------------------------------------------------------------------ chaos

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (a crash). Its data stays for :meth:`restart`."""
        self._node(i).kill()

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: frozen, not dead, until :meth:`resume`."""
        self._node(i).pause()

    def resume(self, i: int) -> None:
        """SIGCONT node ``i``."""
        self._node(i).resume()

    def restart(self, i: int, timeout: float | None = None) -> None:
        """(Kill and) start node ``i`` again on its ports and data; wait until it serves.

        Raises:
            KafkaStartError: it did not come back within ``timeout`` (default
                ``start_timeout``) seconds.
        """
        node = self._node(i)
        node.kill()
        node.launch()
        node.wait_ready(time.monotonic() + (timeout or self.start_timeout))

    async def arestart(self, i: int) -> None:
        """:meth:`restart` in a worker thread."""
        await asyncio.to_thread(self.restart, i)

    def log_tail(self, i: int, lines: int = 40) -> str:
        """The latest log lines of node ``i``."""
        return self._node(i).log_tail(lines)

    def _node(self, i: int) -> KafkaNode:
        nodes = self._started_nodes()
        if not 0 <= i < len(nodes):
            raise IndexError(f"node index {i} out of range 0..{len(nodes) - 1}")
        return nodes[i]

    def _started_nodes(self) -> list[KafkaNode]:
        if self._home is None or not self._nodes:
            raise RuntimeError("the Kafka cluster is not running: call start() or use `with`")
        return self._nodes


class KafkaBroker(KafkaCluster):
    """A single combined controller+broker node: replication factor 1, min ISR 1."""

    def __init__(
        self,
        *,
        heap: str = "512m",
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_grace: float = 10.0,
    ) -> None:
        """See :class:`KafkaCluster`; ``n`` is 1."""
        super().__init__(
            1, heap=heap, settings=settings, start_timeout=start_timeout, stop_grace=stop_grace
        )

    @property
    def node(self) -> KafkaNode:
        """The one node."""
        return self._node(0)


def start_single(
    *, heap: str = "512m", settings: Mapping[str, str] | None = None, start_timeout: float = 60.0
) -> KafkaBroker:
    """Start a :class:`KafkaBroker` (for a session fixture); ``stop()`` it when done.

    Raises:
        KafkaUnavailable: skip the tests: Kafka cannot be run here.
        KafkaStartError: fail the tests: the broker did not start.
    """
    return KafkaBroker(heap=heap, settings=settings, start_timeout=start_timeout).start()


def start_cluster(
    n: int = 3,
    *,
    heap: str = "512m",
    settings: Mapping[str, str] | None = None,
    start_timeout: float = 60.0,
) -> KafkaCluster:
    """Start a :class:`KafkaCluster` of ``n`` nodes (for a session fixture); ``stop()`` it.

    Raises:
        KafkaUnavailable: skip the tests: Kafka cannot be run here.
        KafkaStartError: fail the tests: a node did not start.
    """
    return KafkaCluster(n, heap=heap, settings=settings, start_timeout=start_timeout).start()


def _in_parallel(jobs: list[Callable[[], None]]) -> None:
    """Run callables in threads; re-raise the first error after all finish."""
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as e:  # re-raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        clusters = list(_live)
    for cluster in clusters:
        cluster.stop(grace=0.0)
