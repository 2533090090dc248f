"""Projection benchmarks: catch-up events/s into PostgreSQL next to a raw COPY of the same rows.

Phases, in one run against the same broker and PostgreSQL:

1. produce a scenario of ``--workflows`` demo workflows (every topic, ~25
   events per workflow) to fresh topics;
2. **read only**: drain every topic with the EventConsumer (fetch + decode);
3. **catch-up**: a projector from offset zero into a fresh schema until it has
   stored the end offsets (events/s = records / seconds), in a fresh process
   (then in ``--workers`` processes); the clock starts once it is connected and
   migrated. With ``--baseline DIR``, the same again with the ``projections``
   package in DIR (an older version), the two in turn on the same topics.
   ``…_cpu_us`` is the CPU per event of the projector processes and of the
   embedded PostgreSQL during the catch-up;
4. **raw COPY**: ``copy_records_to_table`` of the very archive rows the
   projector wrote, into a copy of the ``events`` table, with and without its
   indexes: the floor of what PostgreSQL needs for the bytes alone;
5. with ``--api``: the query API on a schema of ``--api-workflows`` synthetic
   workflows, list and get latency p50/p99 (in-process ASGI client).

Phases 2-4 run ``--rounds`` times on the same topics (a fresh schema each
round); the summary gives the medians and the ratio of each to the raw COPY
baseline of the same run (the machine is shared and noisy: compare ratios).

Run: ``python -m tests.bench.projections`` (embedded Tansu and PostgreSQL) or
with ``AGENTLOG_KAFKA_BOOTSTRAP`` / ``AGENTLOG_POSTGRES_DSN`` set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka.structs import TopicPartition

from agentlog.projections.api import create_app
from agentlog.projections.config import ProjectionSettings
from agentlog.projections.folds.archive import archive_columns
from agentlog.projections.folds.batch import Rows, fold_batch
from agentlog.projections.migrate import migrate
from agentlog.projections.tables import EVENTS, WORKFLOWS
from agentlog.settings import Settings
from agentlog.streams.consumer import EventConsumer
from agentlog.streams.embedded import PostgresLauncher, TansuLauncher
from agentlog.streams.producer import EventProducer
from tests.integration.projections.support import create_topics, produce
from tests.unit.projections.scenario import Produced, as_records, scenario


def generate(prefix: str, workflows: int) -> list[Produced]:
    items: list[Produced] = []
    chunk = 500
    for start in range(0, workflows, chunk):
        items += scenario(f"{prefix}-{start}", min(chunk, workflows - start))
    return items


async def drain(settings: Settings) -> tuple[int, float]:
    """Read every topic to its end with the EventConsumer; (records, seconds)."""
    async with EventProducer(settings) as producer:
        names = await _topics(settings)
        tps = [TopicPartition(t, p) for t in names for p in await producer.partitions_for(t)]
    consumer = EventConsumer(settings, group_id=None, dead_letters=None, max_records=5000)
    count = 0
    async with consumer:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        started = time.perf_counter()
        while any(consumer.positions().get(tp, 0) < end for tp, end in ends.items() if end):
            count += len(await consumer.poll(timeout_ms=100))
        return count, time.perf_counter() - started


async def _topics(settings: Settings) -> list[str]:
    from agentlog.streams.topics import admin_client

    admin = admin_client(settings)
    await admin.start()
    try:
        prefix = settings.topic("")
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


def _use_projections_from(directory: str | None) -> Any:
    """The ``agentlog.projections.runner`` module, from ``directory`` if given (a child process).

    ``directory`` holds another version of the ``projections`` package (e.g.
    ``git archive HEAD projections | tar -x -C /tmp/base`` gives
    ``/tmp/base/projections``): every ``agentlog.projections.*`` module this
    process imported is dropped and the package looks in ``directory`` first.
    """
    import importlib
    import sys

    if directory is not None:
        import agentlog.projections as package

        for name in [m for m in sys.modules if m.startswith("agentlog.projections.")]:
            del sys.modules[name]
        package.__path__.insert(0, directory)
    return importlib.import_module("agentlog.projections.runner")


#: A catch-up process's job: settings, schema, batch size, (index, count) or None, package dir.
Job = tuple[Settings, str, int, tuple[int, int] | None, str | None]


def _worker(job: Job, ready: Any, go: Any, cpu: Any = None) -> None:
    settings, schema, batch, worker, directory = job
    runner = _use_projections_from(directory)

    async def run() -> None:
        config = runner.ProjectorConfig(
            schema=schema, batch_size=batch, dead_letters=False, worker=worker
        )
        projector = runner.Projector(settings, config)
        targets = await projector.end_offsets_now()
        ready.set()
        if go is None:  # only migrate
            await projector.close()
            return
        go.wait()
        started = time.process_time()
        try:
            await projector.catch_up(targets)
        finally:
            await projector.close()
        cpu.put(time.process_time() - started)

    asyncio.run(run())


async def catch_up(
    settings: Settings, schema: str, batch: int, workers: int = 1, directory: str | None = None
) -> tuple[int, float]:
    """Catch up from offset zero in ``workers`` fresh processes; (records, seconds).

    With more than one, each process owns partition numbers p % workers == i.
    The clock starts once every process is connected and migrated. With
    ``directory``, the processes run the ``projections`` package found there
    (:func:`_use_projections_from`), to compare two versions on the same topics.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    # migrate once first (with the same package), so the processes do not race for it
    migrated = context.Event()
    probe = context.Process(
        target=_worker, args=((settings, schema, batch, None, directory), migrated, None)
    )
    probe.start()
    await asyncio.to_thread(probe.join, 120)
    if probe.exitcode != 0:
        raise RuntimeError("migrating the catch-up schema failed")
    go = context.Event()
    cpu_seconds = context.Queue()
    readies = [context.Event() for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker,
            args=(
                (settings, schema, batch, (i, workers) if workers > 1 else None, directory),
                readies[i],
                go,
                cpu_seconds,
            ),
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    for ready in readies:
        await asyncio.to_thread(ready.wait, 60)
    async with EventProducer(settings) as producer:
        names = await _topics(settings)
        tps = [TopicPartition(t, p) for t in names for p in await producer.partitions_for(t)]
    consumer = EventConsumer(settings, group_id=None, dead_letters=None)
    async with consumer:
        records = sum((await consumer.end_offsets(tps)).values())
    postgres = _postgres_cpu_seconds()
    started = time.perf_counter()
    go.set()
    for process in processes:
        await asyncio.to_thread(process.join, 600)
    elapsed = time.perf_counter() - started
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"catch-up processes failed: {failed}")
    projector = sum(cpu_seconds.get(timeout=10) for _ in processes)
    CPU_US_PER_EVENT.clear()
    CPU_US_PER_EVENT["projector"] = round(projector / records * 1e6, 1)
    if postgres is not None:
        used = _postgres_cpu_seconds()
        assert used is not None
        CPU_US_PER_EVENT["postgres"] = round((used - postgres) / records * 1e6, 1)
    return records, elapsed


#: CPU µs per event of the last :func:`catch_up`: its projector processes (from go to
#: done), and the embedded PostgreSQL (absent for another server).
CPU_US_PER_EVENT: dict[str, float] = {}


def _postgres_cpu_seconds() -> float | None:
    """CPU seconds so far of the embedded PostgreSQL (None when it is not this process's child)."""
    import psutil

    total = 0.0
    found = False
    for process in psutil.Process().children():
        try:
            if process.name() not in ("postgres", "postmaster"):
                continue
            found = True
            # the postmaster's children times hold its ended backends (the projectors')
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in process.children():
                t = child.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total if found else None


async def raw_copy(dsn: str, schema: str) -> dict[str, float]:
    """COPY the projector's archive rows into copies of ``events`` (with, without indexes)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT * FROM {schema}.events")
        columns = list(rows[0].keys())
        records = [tuple(r.values()) for r in rows]
        # jsonb travels as text in COPY's binary format through asyncpg's codec
        results = {}
        for label, like in (("indexed", "INCLUDING ALL"), ("bare", "")):
            table = f"{schema}.copy_{label}"
            await conn.execute(f"CREATE TABLE {table} (LIKE {schema}.events {like})")
            started = time.perf_counter()
            await conn.copy_records_to_table(
                f"copy_{label}", schema_name=schema, records=records, columns=columns
            )
            results[label] = len(records) / (time.perf_counter() - started)
        return results
    finally:
        await conn.close()


async def one_round(settings: Settings, args: argparse.Namespace, n: int) -> dict[str, float]:
    """Read-only drain, catch-up (one process, then ``--workers``), raw COPY; events/s each.

    With ``--baseline``, every catch-up runs with the baseline package too, the
    two versions in turn (which goes first alternates with the round).
    """
    out: dict[str, float] = {}
    count, seconds = await drain(settings)
    out["read_decode_per_s"] = round(count / seconds)
    versions: list[tuple[str, str | None]] = [("", None)]
    if args.baseline:
        versions.append(("base_", args.baseline))
        if n % 2 == 0:
            versions.reverse()
    kept = ""
    for workers in sorted({1, args.workers}):
        for prefix, directory in versions:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            records, seconds = await catch_up(settings, schema, args.batch, workers, directory)
            name = "catch_up" if workers == 1 else f"catch_up_{workers}_workers"
            out[f"{prefix}{name}_per_s"] = round(records / seconds)
            for what, us in CPU_US_PER_EVENT.items():
                out[f"{prefix}{name}_{what}_cpu_us"] = us
            if workers == 1 and not prefix:
                kept = schema  # the raw COPY below copies its archive
            else:
                await _drop(settings, schema)
    assert settings.postgres_dsn is not None
    copies = await raw_copy(settings.postgres_dsn, kept)
    out["raw_copy_indexed_per_s"] = round(copies["indexed"])
    out["raw_copy_bare_per_s"] = round(copies["bare"])
    await _drop(settings, kept)
    return out


async def _drop(settings: Settings, schema: str) -> None:
    assert settings.postgres_dsn is not None
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        settings = Settings.from_env()
        data = Path(tempfile.mkdtemp(prefix="agentlog-bench-"))
        if settings.kafka_bootstrap is None:
            tansu = await stack.enter_async_context(TansuLauncher(data))
            settings = settings.with_overrides(kafka_bootstrap=tansu.bootstrap)
        if settings.postgres_dsn is None:
            pg = await stack.enter_async_context(PostgresLauncher(data, fresh=True))
            settings = settings.with_overrides(postgres_dsn=pg.dsn)
        settings = settings.with_overrides(
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=6
        )
        if args.workflows:
            await create_topics(settings)
            items = generate(settings.topic_prefix, args.workflows)
            started = time.perf_counter()
            produced = await produce(settings, items, chunk=2000)
            results["produced"] = produced
            results["produce_per_s"] = round(produced / (time.perf_counter() - started))
            rounds = []
            for n in range(1, args.rounds + 1):
                rounds.append(await one_round(settings, args, n))
                print(f"round {n}: {json.dumps(rounds[-1])}", flush=True)
            results["rounds"] = rounds
            results["median"] = {
                k: round(statistics.median(r[k] for r in rounds), 1 if k.endswith("_us") else None)
                for k in rounds[0]
            }
            baseline = results["median"]["raw_copy_indexed_per_s"]
            results["ratio_to_raw_copy_indexed"] = {
                k: round(v / baseline, 3)
                for k, v in results["median"].items()
                if "catch_up" in k and k.endswith("_per_s")
            }
        if args.api:
            assert settings.postgres_dsn is not None
            results["api"] = await measure_api(
                settings.postgres_dsn,
                f"benchapi_{uuid.uuid4().hex[:8]}",
                args.api_workflows,
                args.samples,
            )
    return results


# -- the API on a large projection -----------------------------------------------------
# Fill a fresh schema with copies of one recorded pr-deploy workflow (its row and its
# archived journal, ids rewritten), then time the routes in-process (httpx ASGI
# transport, no network): p50/p99.


def _template() -> tuple[str, list[list[Any]], Any]:
    records = [r for r in as_records(scenario("tpl", 1)) if r.topic.endswith(".journal")]
    workflow_id = records[0].event.workflow_id  # type: ignore[union-attr]
    columns = archive_columns(records)
    (row,) = fold_batch(records, Rows()).new_workflows
    return workflow_id, columns, row


async def fill(dsn: str, schema: str, workflows: int) -> list[str]:
    """``workflows`` copies of the template; returns their ids."""
    template_id, columns, row = _template()
    rows = list(zip(*columns, strict=True))
    ids = [f"bench-{i:07d}" for i in range(workflows)]
    statuses = ["succeeded", "failed", "running", "cancelled"]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await migrate(conn, schema)
        base = row.created_at
        chunk = 10_000
        for start in range(0, workflows, chunk):
            events: list[tuple[Any, ...]] = []
            flows: list[tuple[Any, ...]] = []
            for n in range(start, min(workflows, start + chunk)):
                workflow_id = ids[n]
                for k, event in enumerate(rows):
                    event_id = str(uuid.UUID(int=n * 64 + k))
                    payload = (
                        event[11].replace(template_id, workflow_id).replace(event[0], event_id)
                    )
                    events.append(
                        (
                            event_id,
                            event[1],
                            event[2],
                            n * 64 + k,
                            event[4],
                            workflow_id,
                            workflow_id,
                            event[7],
                            event[8],
                            event[9],
                            event[10],
                            payload,
                        )
                    )
                values = [getattr(row, c) for c in WORKFLOWS.columns]
                values[0] = workflow_id
                values[1] = statuses[n % len(statuses)]
                values[WORKFLOWS.columns.index("created_at")] = base.replace(
                    microsecond=0
                ) + _seconds(n)
                flows.append(tuple(values))
            await conn.copy_records_to_table("events", records=events, columns=EVENTS.columns)
            await conn.copy_records_to_table("workflows", records=flows, columns=WORKFLOWS.columns)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return ids


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def measure_api(dsn: str, schema: str, workflows: int, samples: int) -> dict[str, Any]:
    """Fill ``schema`` and time the routes; returns p50/p99 per route."""
    started = time.perf_counter()
    ids = await fill(dsn, schema, workflows)
    results: dict[str, Any] = {
        "workflows": workflows,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }
    app = create_app(Settings(postgres_dsn=dsn), ProjectionSettings(schema=schema))
    rng = random.Random(1)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            first = (await client.get("/workflows", params={"limit": 50})).json()
            deep = first["next_cursor"]
            cases = {
                "list_first_page": lambda: client.get("/workflows", params={"limit": 50}),
                "list_by_status": lambda: client.get(
                    "/workflows", params={"limit": 50, "status": "failed"}
                ),
                "list_next_page": lambda: client.get(
                    "/workflows", params={"limit": 50, "cursor": deep}
                ),
                "get_state": lambda: client.get(f"/workflows/{rng.choice(ids)}"),
                "get_history": lambda: client.get(f"/workflows/{rng.choice(ids)}/history"),
            }
            for name, call in cases.items():
                for _ in range(20):  # warm up (pool, prepared statements)
                    await call()
                times = []
                for _ in range(samples):
                    t = time.perf_counter()
                    response = await call()
                    times.append(time.perf_counter() - t)
                    assert response.status_code == 200, response.text
                results[name] = _summary(times)
    finally:
        await app.state.api.db.close()
    return results


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=4000, help="0 skips the catch-up part")
    parser.add_argument("--batch", type=int, default=10_000, help="projector batch size")
    parser.add_argument("--workers", type=int, default=2, help="also catch up with N processes")
    parser.add_argument("--rounds", type=int, default=3, help="catch-up rounds (medians)")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also catch up with the projections package in DIR (e.g. /tmp/base/projections "
        "after `git archive HEAD projections | tar -x -C /tmp/base`), in turn with this one",
    )
    parser.add_argument("--api", action="store_true", help="also measure the query API")
    parser.add_argument("--api-workflows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=500)
    return parser.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse())), indent=2))
