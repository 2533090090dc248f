"""Projection benchmarks: catch-up events/s into PostgreSQL next to a raw COPY of the same rows.

Phases, in one run against the same broker and PostgreSQL:

1. produce a scenario of ``--workflows`` demo workflows (every topic, ~25
   events per workflow) to fresh topics;
2. **read only**: drain every topic with the EventConsumer (fetch + decode);
3. **catch-up**: a projector from offset zero into a fresh schema until it has
   stored the end offsets (events/s = records / seconds);
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
from agentlog.projections.runner import Projector, ProjectorConfig
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


async def catch_up(settings: Settings, schema: str, batch: int) -> tuple[int, float]:
    config = ProjectorConfig(schema=schema, batch_size=batch, dead_letters=False)
    projector = Projector(settings, config)
    await projector.open()
    try:
        targets = await projector.end_offsets()
        started = time.perf_counter()
        await projector.catch_up(targets)
        return sum(targets.values()), time.perf_counter() - started
    finally:
        await projector.close()


def _worker(job: tuple[Settings, str, int, tuple[int, int]], ready: Any, go: Any) -> None:
    settings, schema, batch, worker = job

    async def run() -> None:
        config = ProjectorConfig(schema=schema, batch_size=batch, dead_letters=False, worker=worker)
        projector = Projector(settings, config)
        targets = await projector.end_offsets_now()
        ready.set()
        go.wait()
        try:
            await projector.catch_up(targets)
        finally:
            await projector.close()

    asyncio.run(run())


async def catch_up_workers(
    settings: Settings, schema: str, batch: int, workers: int
) -> tuple[int, float]:
    """``workers`` processes, each owning partition numbers p % workers == i; (records, s).

    The clock starts once every process is connected and migrated.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    go = context.Event()
    readies = [context.Event() for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker, args=((settings, schema, batch, (i, workers)), readies[i], go)
        )
        for i in range(workers)
    ]
    # migrate once first, so the workers do not race for it
    probe = Projector(settings, ProjectorConfig(schema=schema, dead_letters=False))
    targets = await probe.end_offsets_now()
    await probe.close()
    for process in processes:
        process.start()
    for ready in readies:
        await asyncio.to_thread(ready.wait, 60)
    started = time.perf_counter()
    go.set()
    for process in processes:
        await asyncio.to_thread(process.join, 600)
    elapsed = time.perf_counter() - started
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"catch-up workers failed: {failed}")
    return sum(targets.values()), elapsed


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


async def one_round(settings: Settings, args: argparse.Namespace) -> dict[str, int]:
    """Read-only drain, catch-up (one process, then ``--workers``), raw COPY; events/s each."""
    out: dict[str, int] = {}
    count, seconds = await drain(settings)
    out["read_decode_per_s"] = round(count / seconds)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    records, seconds = await catch_up(settings, schema, args.batch)
    out["catch_up_per_s"] = round(records / seconds)
    if args.workers > 1:
        schema2 = f"bench_{uuid.uuid4().hex[:8]}"
        records, seconds = await catch_up_workers(settings, schema2, args.batch, args.workers)
        out[f"catch_up_{args.workers}_workers_per_s"] = round(records / seconds)
        await _drop(settings, schema2)
    assert settings.postgres_dsn is not None
    copies = await raw_copy(settings.postgres_dsn, schema)
    out["raw_copy_indexed_per_s"] = round(copies["indexed"])
    out["raw_copy_bare_per_s"] = round(copies["bare"])
    await _drop(settings, schema)
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
                rounds.append(await one_round(settings, args))
                print(f"round {n}: {json.dumps(rounds[-1])}", flush=True)
            results["rounds"] = rounds
            results["median"] = {
                k: round(statistics.median(r[k] for r in rounds)) for k in rounds[0]
            }
            baseline = results["median"]["raw_copy_indexed_per_s"]
            results["ratio_to_raw_copy_indexed"] = {
                k: round(v / baseline, 3)
                for k, v in results["median"].items()
                if k.startswith("catch_up")
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
    parser.add_argument("--api", action="store_true", help="also measure the query API")
    parser.add_argument("--api-workflows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=500)
    return parser.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse())), indent=2))
