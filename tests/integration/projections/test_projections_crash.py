"""Exactly-once effects: the projector is killed mid-batch and fed redeliveries while events flow.

Kills cancel the projector's task, half of them inside a batch's transaction
(between the writes and COMMIT); some batches fail with a connection error and
are retried; stored offsets are rewound now and then so committed batches are
delivered again; producers re-send events (same ids) and poison records. At
the end the read models must equal a one-pass fold of the topics.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import asyncpg
import pytest

from agentlog.projections.records import Record
from agentlog.projections.runner import Projector, ProjectorConfig
from agentlog.settings import Settings
from tests.integration.projections.support import produce, scenario
from tests.integration.projections.test_projections_flow import assert_matches_topics


class Saboteur:
    """The before-commit hook: sometimes fails a batch, sometimes holds it open to be killed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.inside = asyncio.Event()
        self.failures = 0
        self.hold = False

    async def __call__(self, records: Sequence[Record]) -> None:
        if self.rng.random() < 0.1:
            self.failures += 1
            raise ConnectionResetError("simulated connection loss before COMMIT")
        if self.hold:
            self.inside.set()
            await asyncio.sleep(5)  # the test kills the projector now


@pytest.mark.timeout(240)
async def test_kills_and_redeliveries_change_nothing(
    settings: Settings, schema: str, postgres_dsn: str
) -> None:
    items = scenario(settings.topic_prefix, 150)
    producing = asyncio.create_task(
        produce(settings, items, chunk=40, pause=0.03, duplicates=0.05, poison_every=173)
    )
    saboteur = Saboteur(seed=11)
    config = ProjectorConfig(schema=schema, batch_size=97, before_commit=saboteur)
    rng = random.Random(5)
    kills = mid_batch = rewinds = redelivered = duplicates = 0
    while not producing.done() or kills < 8:
        projector = Projector(settings, config)
        await projector.start()
        saboteur.hold = kills % 2 == 1
        saboteur.inside.clear()
        if saboteur.hold:
            try:
                async with asyncio.timeout(5):
                    await saboteur.inside.wait()
                mid_batch += 1
            except TimeoutError:
                pass  # nothing left to write
        else:
            await asyncio.sleep(rng.uniform(0.05, 0.3))
        await projector.stop()  # cancels the task, mid-transaction when held
        saboteur.hold = False
        kills += 1
        redelivered += projector.stats.redelivered
        duplicates += projector.stats.duplicates
        if kills % 3 == 0:
            rewinds += await rewind(postgres_dsn, schema, rng.randint(5, 60))
    await producing
    async with Projector(settings, ProjectorConfig(schema=schema, batch_size=500)) as projector:
        await projector.wait_caught_up(60)
        await projector.wait_caught_up(30)  # dead letters written while catching up
        async with projector.pool.acquire() as conn:
            await assert_matches_topics(conn, settings)
    assert mid_batch >= 3
    assert saboteur.failures >= 1
    assert rewinds >= 1
    # rewound offsets redeliver records the archive has: dropped as duplicates
    assert duplicates > 0, (redelivered, duplicates)


async def rewind(dsn: str, schema: str, by: int) -> int:
    """Move every stored offset back by ``by`` (as if commits were lost); return rows moved."""
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute(
            f"UPDATE {schema}.projector_offsets SET next_offset = greatest(0, next_offset - $1)"
            " WHERE next_offset > 0",
            by,
        )
    finally:
        await conn.close()
    return int(status.split()[-1])
