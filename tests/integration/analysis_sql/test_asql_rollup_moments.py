"""Per-variant rollup moments corrected for touched units equal the per-unit computation.

Without percentile capping, no segment and no ``until``, an analysis on a complete rollup
reads the rollup's cached moments plus corrections (:mod:`rollup_moments`); each test
checks it against the full path and the Python reference, to a relative 1e-9.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from test_asql_collect_stats import (
    LOOKBACK_S,
    UNCAPPED,
    VARIANTS,
    World,
    assert_close,
    make_world,
    reference,
    store,
)

from verdict_analysis import stats
from verdict_analysis.metrics import CollectedStats
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import read_rollup, refresh_rollups
from verdict_analysis.metrics.rollup_moments import applies, read_moments
from verdict_analysis.metrics.sql import UnitScope

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _collect(pool: asyncpg.Pool, world: World, **kwargs: object) -> CollectedStats:
    async with pool.acquire() as conn:
        return await collect_stats(conn, world.key, VARIANTS, "control", UNCAPPED, **kwargs)  # type: ignore[arg-type]


async def _refresh(pool: asyncpg.Pool, world: World, hours: float) -> None:
    mark = min(at for _, at, _ in world.exposures.values()) + timedelta(hours=hours)
    async with pool.acquire() as conn:
        await refresh_rollups(
            conn, world.key, UNCAPPED, cuped_lookback_s=LOOKBACK_S, watermark=mark
        )


async def _uses_moments(pool: asyncpg.Pool, world: World) -> bool:
    async with pool.acquire() as conn:
        read = await read_rollup(conn, world.key, UNCAPPED, LOOKBACK_S)
        assert read is not None
        scope = UnitScope(world.key, VARIANTS)
        if not applies(scope, UNCAPPED, read):
            return False
        return await read_moments(conn, world.key, read.signature) is not None


@pytest.mark.parametrize("hours", [12.0, 30.0, 24.0 * 30])
async def test_moments_plus_corrections_equal_full_and_reference(
    pool: asyncpg.Pool, hours: float
) -> None:
    # Raw events after the watermark (12 h, 30 h), or none at all (30 days).
    world = make_world(seed=21)
    await store(pool, world)
    await _refresh(pool, world, hours)
    assert await _uses_moments(pool, world)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    full = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, rollups=False)
    assert_close(got, full)
    assert_close(got, reference(world, UNCAPPED, True))
    counts = got.metrics[0].variants["control"]
    assert isinstance(counts, stats.ProportionStats) and type(counts.n_units) is int


async def test_folds_rebuild_the_moments_and_new_conflicts_are_subtracted(
    pool: asyncpg.Pool,
) -> None:
    world = make_world(seed=22)
    await store(pool, world)
    await _refresh(pool, world, 12.0)
    await _refresh(pool, world, 30.0)  # a fold: the moments follow the rollup
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(got, reference(world, UNCAPPED, True))
    # Conflicts found after the refresh: with raw events after the watermark and without.
    units = [u for u in world.exposures if u not in world.conflicts]
    async with pool.acquire() as conn:
        for unit in units[:5]:
            await conn.execute(
                "INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key,"
                " exposed_at) VALUES ($1, $2, 'other', now())",
                world.key,
                unit,
            )
            world.conflicts.add(unit)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(got, reference(world, UNCAPPED, True))


async def test_a_unit_exposed_after_the_refresh_uses_the_per_unit_query(
    pool: asyncpg.Pool,
) -> None:
    world = make_world(seed=23)
    late = next(iter(world.exposures))
    early = World(world.key, conflicts=set(world.conflicts))
    early.exposures = {u: e for u, e in world.exposures.items() if u != late}
    early.events = [e for e in world.events if e.unit != late]
    await store(pool, early)
    await _refresh(pool, world, 30.0)
    rest = World(world.key)
    rest.exposures = {late: world.exposures[late]}
    rest.events = [e for e in world.events if e.unit == late]
    await store(pool, rest)
    assert not await _uses_moments(pool, world)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(got, reference(world, UNCAPPED, True))
