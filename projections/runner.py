"""The projector: reads every agentlog topic and keeps the PostgreSQL read models current.

No consumer group: the projector assigns itself the partitions it owns (all,
or the partition numbers in ``ProjectorConfig.partitions``, of every topic)
and seeks them to the next offsets stored **with the rows**
(``projector_offsets``), so there is no group join delay and no second source
of truth for progress. Each batch is one transaction (:mod:`.store`).

PostgreSQL may go away at any time: a batch that fails on a connection error
is kept in memory and written again, with backoff, until the server is back.
The transaction re-checks the stored offsets, so a batch whose COMMIT made it
but whose acknowledgement did not is not applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import TopicPartition

from agentlog.errors import AgentlogError, ConnectError
from agentlog.projections.config import DEFAULT_SCHEMA, check_schema
from agentlog.projections.db import (
    TRANSIENT_ERRORS,
    close_pool,
    create_pool,
    describe,
    require_dsn,
    retry_transient,
)
from agentlog.projections.folds.archive import archive_tuples
from agentlog.projections.migrate import migrate
from agentlog.projections.records import UNSTORABLE, Record, storable
from agentlog.projections.store import (
    RETRY_ERRORS,
    BatchOutcome,
    Partition,
    RowCache,
    apply_batch,
    load_offsets,
)
from agentlog.schemas.events import EVENT_COPIES
from agentlog.settings import Settings
from agentlog.streams.codec import AvroCodec
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.deadletter import DeadLetterWriter
from agentlog.streams.producer import EventProducer
from agentlog.streams.topics import CATALOGUE, admin_client
from agentlog.tuning import raise_gc_threshold

logger = logging.getLogger(__name__)

_ADMIN_TIMEOUT_S = 10.0
#: A poll of at least this many records means the projector is behind.
_BACKLOG = 1000
_BACKLOG_WAIT_MS = 50


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    """How the projector runs.

    Attributes:
        schema: the PostgreSQL schema of the read models.
        batch_size: records per transaction at most.
        batch_wait_ms: how long to gather more records into a batch that is not full.
        cache_rows: rows per table kept from earlier batches so that they need
            not be loaded again (:class:`~agentlog.projections.cache.RowCache`); 0: none.
        partitions: partition numbers this projector owns, of every topic (None: all);
            give each projector of a scaled-out deployment a disjoint set.
        worker: ``(index, count)``: own only partition numbers ``p % count == index``
            (the processes of ``agentlog projector run --workers``); combines with
            ``partitions``. A workflow's events share one partition number on every
            workflow topic, so each workflow is folded by exactly one worker.
        refresh_topics_s: how often to look for new topics (``tasks.<kind>``) and partitions.
        lag_refresh_s: how often to record the log-end offsets (for lag metrics).
        dead_letters: send undecodable records to the dead-letter topic (off for rebuilds).
        pool_size: PostgreSQL connections.
        application_name: shown in ``pg_stat_activity``.
        synchronous_commit: wait for the WAL flush at each COMMIT. Off by default:
            a PostgreSQL crash may then lose the last batches, but rows and
            offsets together, so the projector folds them again (the read
            models are rebuildable; exactly-once does not depend on it).
        before_commit: fault injection for tests, awaited inside each batch's
            transaction just before COMMIT.
        alive_file: touched at every upkeep (every ``lag_refresh_s`` at most) while
            the loop runs: a health check can test its age.
        gc_threshold: at :meth:`Projector.open`, raise the first threshold of Python's
            cyclic garbage collector to this many allocations (never lower it; None:
            leave it). It is process-wide. With the default 700, a catch-up spent a
            quarter of its CPU in collections: each batch keeps ~10^5 objects alive
            (decoded events, rows, the row cache), and every full collection walks
            them all. Reference cycles are still collected, just less often.
    """

    schema: str = DEFAULT_SCHEMA
    batch_size: int = 10_000
    batch_wait_ms: int = 20
    cache_rows: int = 20_000
    partitions: frozenset[int] | None = None
    worker: tuple[int, int] | None = None
    refresh_topics_s: float = 10.0
    lag_refresh_s: float = 5.0
    dead_letters: bool = True
    pool_size: int = 2
    application_name: str = "agentlog-projector"
    synchronous_commit: bool = False
    before_commit: Callable[[Sequence[Record]], Awaitable[None]] | None = None
    alive_file: Path | None = None
    gc_threshold: int | None = 100_000

    def __post_init__(self) -> None:
        check_schema(self.schema)
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: at least 1")
        if self.cache_rows < 0:
            raise ValueError(f"cache_rows={self.cache_rows}: 0 (no cache) or more")
        if self.worker is not None and not 0 <= self.worker[0] < self.worker[1]:
            raise ValueError(f"worker={self.worker}: use (index, count) with 0 <= index < count")
        if self.gc_threshold is not None and self.gc_threshold < 1:
            raise ValueError(f"gc_threshold={self.gc_threshold}: at least 1 (or None)")

    def owns(self, partition: int) -> bool:
        """True when this projector reads ``partition`` (of any topic)."""
        if self.partitions is not None and partition not in self.partitions:
            return False
        return self.worker is None or partition % self.worker[1] == self.worker[0]


@dataclass(slots=True)
class ProjectorStats:
    """Counters since start."""

    batches: int = 0
    folded: int = 0
    redelivered: int = 0
    duplicates: int = 0
    retries: int = 0
    last_batch_seconds: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


class ProjectorError(AgentlogError):
    """The projector stopped on an error it cannot retry (see the cause)."""

    retriable = False

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"the projector stopped: {problem}; it resumes from the stored offsets when restarted"
        )


class Projector:
    """Keeps the read models of one schema up to date with the topics.

    Use ``async with Projector(settings, config) as projector:`` to run it in
    the background (failures surface from the ``async with`` and from
    :meth:`wait_caught_up`), or :meth:`open` + :meth:`catch_up` + :meth:`close`
    to run up to given offsets in the foreground (rebuilds).
    """

    def __init__(
        self,
        settings: Settings,
        config: ProjectorConfig | None = None,
        *,
        codec: AvroCodec | None = None,
    ) -> None:
        require_dsn(settings.postgres_dsn)
        self.settings = settings
        #: (topic, type) of copies: the same event is folded from its home topic only
        self._copies = frozenset(
            (settings.topic(family), name)
            for name, families in EVENT_COPIES.items()
            for family in families
        )
        self.config = config or ProjectorConfig()
        self.codec = codec or AvroCodec.default()
        self.stats = ProjectorStats()
        self.notify_channel = f"{self.config.schema}_events"
        self._pool: Any = None
        self._consumer: EventConsumer | None = None
        self._producer: EventProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._assigned: list[TopicPartition] = []
        #: next offset stored in PostgreSQL per partition (what a restart resumes from)
        self._committed: dict[Partition, int] = {}
        #: next offsets handed to a write (committed, or being committed)
        self._submitted: dict[Partition, int] = {}
        self._cache = RowCache(self.config.cache_rows) if self.config.cache_rows else None
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._progress = asyncio.Event()
        self._stopping = False
        self._opened = False
        self._next_refresh = 0.0
        self._next_lag = 0.0

    # -- lifecycle --------------------------------------------------------------

    async def open(self) -> None:
        """Connect to Kafka and PostgreSQL, migrate, assign and seek; idempotent.

        Waits (retrying) while PostgreSQL is unavailable.

        Raises:
            ConnectError: the broker cannot be reached.
        """
        if self._opened:
            return
        self._stopping = False
        if self.config.gc_threshold is not None:
            raise_gc_threshold(self.config.gc_threshold)
        try:
            await self._open_kafka()
            await self._open_database()
            await self._refresh_assignment(force=True)
        except BaseException:
            await self._close_all()
            raise
        self._opened = True

    async def start(self) -> None:
        """:meth:`open`, then project in a background task until :meth:`stop`; idempotent."""
        if self._task is not None:
            return
        await self.open()
        self._failure = None
        self._task = asyncio.create_task(self._run_forever(), name="agentlog-projector")

    async def stop(self) -> None:
        """Stop the background task (an open transaction rolls back) and disconnect; idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()

    async def close(self) -> None:
        """Disconnect (after :meth:`open` without :meth:`start`); idempotent."""
        self._stopping = True
        await self._close_all()
        self._opened = False

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        failure = self._failure
        await self.stop()
        if failure is not None and et is None:
            raise ProjectorError(describe(failure)) from failure

    async def wait(self) -> None:
        """Until the background task ends, which it does only on failure (or stop).

        Raises:
            ProjectorError: the failure that ended it.
        """
        task = self._task
        if task is not None:
            await asyncio.shield(task)
        self._raise_failure()

    @property
    def pool(self) -> Any:
        """The asyncpg pool (after :meth:`open`)."""
        return self._pool

    @property
    def committed(self) -> dict[Partition, int]:
        """The next offset stored per partition, as far as this projector knows."""
        return dict(self._committed)

    @property
    def partitions(self) -> list[TopicPartition]:
        """The partitions assigned now."""
        return list(self._assigned)

    # -- progress ----------------------------------------------------------------

    async def end_offsets(self) -> dict[Partition, int]:
        """The log-end offset of every partition this projector owns (topics listed now).

        In the foreground this also assigns new partitions; while the background
        task runs, it only asks that task to pick them up at once (it alone
        moves the consumer).
        """
        consumer = self._require()
        if self._task is None:
            await self._refresh_assignment(force=True)
            wanted = self._assigned
        else:
            wanted = await self._wanted_partitions()
            if set(wanted) - set(self._assigned):
                self._next_refresh = 0.0
        ends = await consumer.end_offsets(wanted)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}

    async def end_offsets_now(self) -> dict[Partition, int]:
        """:meth:`open` (without projecting) and return :meth:`end_offsets`."""
        await self.open()
        return await self.end_offsets()

    async def wait_caught_up(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - seconds, like asyncio.wait_for
        """Until everything in the topics now is stored in PostgreSQL.

        Raises:
            TimeoutError: not caught up within ``timeout`` seconds.
            ProjectorError: the background task failed.
        """
        async with asyncio.timeout(timeout):
            targets = await self.end_offsets()
            while not self._reached(targets):
                self._raise_failure()
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._progress.wait()
        self._raise_failure()

    async def catch_up(
        self,
        targets: Mapping[Partition, int] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Project in the foreground until the stored offsets reach ``targets`` exactly.

        Records at or past a target are not folded, so a rebuild can stop at
        the live projection's offsets. ``targets`` defaults to the log-end
        offsets now. ``progress(events)`` is called after every batch.
        """
        await self.open()
        goal = dict(targets) if targets is not None else await self.end_offsets()
        await self._refresh_assignment(force=True)
        await self._seek_all()
        await self._pump(goal, progress)

    # -- the loop ------------------------------------------------------------------

    async def _run_forever(self) -> None:
        try:
            await self._pump(None, None)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # surfaces from __aexit__ / wait_caught_up
            logger.exception("projector stopped: %s", type(e).__name__)
            self._failure = e
            self._progress.set()

    async def _pump(
        self, goal: Mapping[Partition, int] | None, progress: Callable[[int], None] | None
    ) -> None:
        """Gather batch n + 1 while batch n is being written (one write at a time, in order).

        Without a ``goal``, runs until cancelled and does the periodic upkeep
        (new topics, lag) between writes; with one, returns once it is stored.
        """
        pending: asyncio.Task[BatchOutcome] | None = None
        self._submitted = dict(self._committed)
        try:
            while goal is None or not self._reached(goal):
                if goal is None and self._upkeep_due():
                    await self._finish(pending, progress)
                    pending = None
                    await self._maintain()
                records, positions = await self._gather(goal)
                # the archive rows need no database: built while batch n is still written
                archive = archive_tuples(records)
                await self._finish(pending, progress)
                pending = None
                if positions:
                    self._submitted.update(positions)
                    pending = asyncio.create_task(self._write(records, positions, archive))
            await self._finish(pending, progress)
            pending = None
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    def _upkeep_due(self) -> bool:
        now = time.monotonic()
        return now >= self._next_refresh or now >= self._next_lag

    async def _finish(
        self, pending: asyncio.Task[BatchOutcome] | None, progress: Callable[[int], None] | None
    ) -> None:
        if pending is None:
            return
        outcome = await pending
        self._committed.update(outcome.offsets)
        self._progress.set()
        if progress is not None:
            progress(outcome.folded + outcome.duplicates + outcome.redelivered)

    async def _maintain(self) -> None:
        if self.config.alive_file is not None:
            try:
                self.config.alive_file.touch()
            except OSError as e:
                logger.warning("projector: cannot touch %s (%s)", self.config.alive_file, e)
        now = time.monotonic()
        if now >= self._next_refresh:
            await self._refresh_assignment()
        if now >= self._next_lag:
            self._next_lag = now + self.config.lag_refresh_s
            try:
                await self._record_lag()
            except (KafkaError, OSError, TimeoutError) as e:
                logger.warning("projector: cannot read end offsets (%s); lag not updated", e)

    async def _gather(
        self, goal: Mapping[Partition, int] | None
    ) -> tuple[list[Record], dict[Partition, int]]:
        """Poll until a batch is full, the wait is over, or nothing more is there.

        With a ``goal`` (catching up to known offsets) the batch is filled up
        to ``batch_size`` unless every partition has been read to its target:
        bigger batches write each row fewer times (a step's events arrive on
        three topics read at different speeds, so a row touched by many small
        batches is written by each).
        """
        consumer = self._require()
        records: list[Record] = []
        deadline = time.monotonic() + self.config.batch_wait_ms / 1000
        timeout_ms = 200
        while len(records) < self.config.batch_size:
            if goal is not None and self._polled_to(goal):
                break  # nothing left to wait for
            delivered = await consumer.poll(timeout_ms=timeout_ms)
            copies = self._copies
            for d in delivered:
                # in goal mode a partition without a target gets none of its records folded
                if goal is not None and d.offset >= goal.get((d.topic, d.partition), 0):
                    continue
                if (d.topic, d.event.envelope.type) in copies:
                    continue  # a lock decision copied to responses: folded from the locks topic
                records.append(Record(d.topic, d.partition, d.offset, d.timestamp_ms, d.event))
            timeout_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not delivered:
                break
            if timeout_ms == 0:
                # past the wait, a big poll means a backlog (catching up): wait for the
                # fetch in flight, so fewer, bigger batches write each row fewer times
                if goal is None and len(delivered) < _BACKLOG:
                    break
                timeout_ms = _BACKLOG_WAIT_MS
        positions: dict[Partition, int] = {}
        for tp, polled in consumer.positions().items():
            key = (tp.topic, tp.partition)
            position = polled if goal is None else min(polled, goal.get(key, 0))
            if position > self._submitted.get(key, self._committed.get(key, 0)):
                positions[key] = position
        return records, positions

    def _polled_to(self, goal: Mapping[Partition, int]) -> bool:
        """True when every partition has been polled up to its target."""
        polled = {(tp.topic, tp.partition): off for tp, off in self._require().positions().items()}
        committed = self._committed
        return all(polled.get(p, committed.get(p, 0)) >= off for p, off in goal.items())

    async def _write(
        self,
        records: list[Record],
        positions: dict[Partition, int],
        archive: list[tuple[Any, ...]] | None = None,
    ) -> BatchOutcome:
        hook = self.config.before_commit

        async def before_commit() -> None:
            if hook is not None:
                await hook(records)

        async def attempt() -> BatchOutcome:
            async with self._pool.acquire() as conn:
                try:
                    return await apply_batch(
                        conn,
                        records,
                        positions,
                        notify=self.notify_channel,
                        before_commit=before_commit if hook is not None else None,
                        cache=self._cache,
                        archive=archive,
                    )
                except TRANSIENT_ERRORS:
                    conn.terminate()  # never hand a half-broken connection back to the pool
                    raise

        def write() -> Awaitable[BatchOutcome]:
            return retry_transient(
                attempt,
                what="writing a batch",
                stopping=lambda: self._stopping,
                on_retry=self._retried,
                errors=RETRY_ERRORS,
            )

        started = time.perf_counter()
        try:
            outcome = await write()
        except UNSTORABLE as e:
            # valid events with text PostgreSQL refuses (U+0000): store them with U+FFFD
            # instead; the events on the topic stay as they are
            logger.warning("projector: %s; writing the batch with U+0000 replaced", describe(e))
            records = [storable(r) for r in records]
            archive = archive_tuples(records)
            outcome = await write()
        stats = self.stats
        stats.last_batch_seconds = time.perf_counter() - started
        stats.batches += 1
        stats.folded += outcome.folded
        stats.redelivered += outcome.redelivered
        stats.duplicates += outcome.duplicates
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "batch of %d records: %d folded, %d duplicates, %d redelivered, %.1f ms",
                len(records),
                outcome.folded,
                outcome.duplicates,
                outcome.redelivered,
                stats.last_batch_seconds * 1000,
            )
        return outcome

    def _retried(self, error: BaseException) -> None:
        self.stats.retries += 1

    def _reached(self, targets: Mapping[Partition, int]) -> bool:
        return all(self._committed.get(p, 0) >= off for p, off in targets.items())

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise ProjectorError(describe(self._failure)) from self._failure

    # -- Kafka side ------------------------------------------------------------------

    async def _open_kafka(self) -> None:
        settings = self.settings
        dead_letters = None
        if self.config.dead_letters:
            self._producer = EventProducer(settings, self.codec, client_id="agentlog-projector")
            await self._producer.start()
            dead_letters = DeadLetterWriter(settings, self._producer)
        self._consumer = EventConsumer(
            settings,
            group_id=None,
            dead_letters=dead_letters,
            codec=self.codec,
            max_records=self.config.batch_size,
            client_id="agentlog-projector",
        )
        await self._consumer.start()
        admin = admin_client(settings)
        try:
            await asyncio.wait_for(admin.start(), _ADMIN_TIMEOUT_S)
        except (KafkaConnectionError, KafkaError, OSError, TimeoutError) as e:
            await admin.close()
            raise ConnectError(
                "AGENTLOG_KAFKA_BOOTSTRAP", settings.kafka_bootstrap, f"{type(e).__name__}: {e}"
            ) from e
        self._admin = admin

    async def _wanted_partitions(self) -> list[TopicPartition]:
        assert self._admin is not None
        prefix = self.settings.topic("")
        fixed = {self.settings.topic(spec.name) for spec in CATALOGUE}
        names = [
            t
            for t in await self._admin.list_topics()
            if t in fixed or t.startswith(prefix + "tasks.")
        ]
        if not names:
            return []
        described = await self._admin.describe_topics(sorted(names))
        owns = self.config.owns
        return sorted(
            (
                TopicPartition(d["topic"], p["partition"])
                for d in described
                if not d.get("error_code")
                for p in d["partitions"]
                if owns(p["partition"])
            ),
            key=lambda tp: (tp.topic, tp.partition),
        )

    async def _refresh_assignment(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return
        self._next_refresh = now + self.config.refresh_topics_s
        try:
            wanted = await self._wanted_partitions()
        except (KafkaError, OSError, TimeoutError) as e:
            logger.warning("projector: cannot list topics (%s); keeping the assignment", e)
            return
        if wanted == self._assigned:
            return
        added = sorted(set(wanted) - set(self._assigned), key=lambda tp: (tp.topic, tp.partition))
        logger.info(
            "projector owns %d partitions of %d topics (new: %s)",
            len(wanted),
            len({tp.topic for tp in wanted}),
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added[:10]) or "none",
        )
        self._assigned = wanted
        if self._cache is not None:
            self._cache.watch((tp.topic, tp.partition) for tp in wanted)
        stored = await retry_transient(
            self._stored_offsets, what="reading stored offsets", stopping=lambda: self._stopping
        )
        for tp in wanted:
            key = (tp.topic, tp.partition)
            self._committed[key] = max(self._committed.get(key, 0), stored.get(key, 0))
        self._require().assign(wanted)
        await self._seek_all()

    async def _seek_all(self) -> None:
        consumer = self._require()
        for tp in self._assigned:
            await consumer.seek(tp, self._committed.get((tp.topic, tp.partition), 0))
        self._submitted = dict(self._committed)

    async def _stored_offsets(self) -> dict[Partition, int]:
        async with self._pool.acquire() as conn:
            return await load_offsets(conn)

    async def _record_lag(self) -> None:
        if not self._assigned:
            return
        ends = await self._require().end_offsets(self._assigned)

        async def store() -> None:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    """
                    INSERT INTO projector_offsets AS o
                        (topic, kafka_partition, end_offset, end_checked_at)
                    SELECT u.topic, u.p, u.e, now() FROM unnest($1::text[], $2::int[], $3::bigint[])
                        AS u(topic, p, e)
                    ON CONFLICT (topic, kafka_partition)
                    DO UPDATE SET end_offset = EXCLUDED.end_offset, end_checked_at = now()
                    """,
                    [tp.topic for tp in ends],
                    [tp.partition for tp in ends],
                    list(ends.values()),
                )

        await retry_transient(store, what="recording end offsets", stopping=lambda: self._stopping)

    def _require(self) -> EventConsumer:
        if self._consumer is None:
            raise RuntimeError("Projector is not open; use `async with` or await open()")
        return self._consumer

    # -- PostgreSQL side -----------------------------------------------------------

    async def _open_database(self) -> None:
        dsn = require_dsn(self.settings.postgres_dsn)
        schema = self.config.schema

        async def connect() -> Any:
            return await create_pool(
                dsn,
                schema,
                min_size=1,
                max_size=self.config.pool_size,
                application_name=self.config.application_name,
                synchronous_commit=self.config.synchronous_commit,
                custom_plans=True,
                fast_timestamps=True,
            )

        self._pool = await retry_transient(
            _unwrap(connect), what="connecting to PostgreSQL", stopping=lambda: self._stopping
        )

        async def run_migrations() -> None:
            async with self._pool.acquire() as conn:
                await migrate(conn, schema)

        await retry_transient(run_migrations, what="migrating", stopping=lambda: self._stopping)

    async def _close_all(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        pool, self._pool = self._pool, None
        self._assigned = []
        if consumer is not None:
            await _quietly("the consumer", consumer.stop())
        if producer is not None:
            await _quietly("the dead-letter producer", producer.stop())
        if admin is not None:
            await _quietly("the admin client", admin.close())
        await _quietly("the PostgreSQL pool", close_pool(pool))


async def _quietly(what: str, closing: Awaitable[Any]) -> None:
    """Await a client's stop; its own failures (a broker already gone) do not stop ours.

    aiokafka's fetcher can raise the CancelledError of its own retry task from
    ``stop()`` when the broker is gone; that is not a cancellation of ours.
    """
    try:
        await closing
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        logger.debug("stopping %s raised CancelledError from inside the client; ignored", what)
    except Exception as e:  # noqa: BLE001 - a client that fails to close must not keep the rest open
        logger.warning("stopping %s failed: %s", what, describe(e))


def _unwrap(connect: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """Let retry_transient see the driver error behind DatabaseUnavailable."""

    async def call() -> Any:
        from agentlog.projections.errors import DatabaseUnavailable

        try:
            return await connect()
        except DatabaseUnavailable as e:
            cause = e.__cause__
            raise (cause if isinstance(cause, BaseException) else OSError(str(e))) from e

    return call
