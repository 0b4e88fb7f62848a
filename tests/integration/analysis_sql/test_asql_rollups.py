"""Incremental analysis: rollup + raw events after the watermark equals the full computation.

Each test builds its own world (the rollup belongs to one experiment), rolls it up to a
watermark inside the data, and checks the incremental statistics against the full path and
the independent Python reference, to a relative 1e-9.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import asyncpg
import pytest
from test_asql_collect_stats import (
    LOOKBACK_S,
    METRICS,
    VARIANTS,
    World,
    assert_close,
    make_world,
    reference,
    store,
)

from verdict_analysis.metrics import CollectedStats, Segment
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import read_rollup, refresh_rollups

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _collect(pool: asyncpg.Pool, world: World, **kwargs: object) -> CollectedStats:
    async with pool.acquire() as conn:
        return await collect_stats(conn, world.key, VARIANTS, "control", METRICS, **kwargs)  # type: ignore[arg-type]


def _without_diagnostics(collected: CollectedStats) -> CollectedStats:
    """The events this test stores after a fold carry a ``received_at`` before its watermark,
    which ingest never writes (``received_at`` is the insert's time, and a watermark never
    passes an open transaction's start): the fold-time event counts cannot see them, so the
    diagnostics are left out here (test_asql_diagnostics checks them)."""
    return dataclasses.replace(collected, diagnostics=None)


async def _refresh(pool: asyncpg.Pool, world: World, hours: float, cuped: bool) -> None:
    mark = min(at for _, at, _ in world.exposures.values()) + timedelta(hours=hours)
    async with pool.acquire() as conn:
        await refresh_rollups(
            conn,
            world.key,
            METRICS,
            cuped_lookback_s=LOOKBACK_S if cuped else None,
            watermark=mark,
        )


@pytest.mark.parametrize("cuped", [False, True])
async def test_incremental_equals_full_and_reference(pool: asyncpg.Pool, cuped: bool) -> None:
    world = make_world(seed=7 + cuped)
    await store(pool, world)
    lookback = LOOKBACK_S if cuped else None
    for hours in (12.0, 30.0):  # a first build, then a fold of the events in between
        await _refresh(pool, world, hours, cuped)
        got = await _collect(pool, world, cuped_lookback_s=lookback, refresh=False)
        full = await _collect(pool, world, cuped_lookback_s=lookback, rollups=False)
        assert_close(got, full)
        assert_close(got, reference(world, METRICS, cuped))
    segment = Segment("country", "US")
    got = await _collect(pool, world, cuped_lookback_s=lookback, segment=segment, refresh=False)
    assert_close(got, reference(world, METRICS, cuped, segment=segment))


async def test_units_exposed_after_the_refresh_read_all_their_events(
    pool: asyncpg.Pool,
) -> None:
    world = make_world(seed=11)
    # Half the units (and their events, CUPED history included) arrive after the refresh,
    # exposed before the watermark: their rolled-up history does not exist yet.
    late_units = set(list(world.exposures)[::2])
    early = World(world.key, conflicts=set(world.conflicts))
    early.exposures = {u: e for u, e in world.exposures.items() if u not in late_units}
    early.events = [e for e in world.events if e.unit not in late_units]
    await store(pool, early)
    await _refresh(pool, world, 30.0, cuped=True)
    rest = World(world.key)
    rest.exposures = {u: e for u, e in world.exposures.items() if u in late_units}
    rest.events = [e for e in world.events if e.unit in late_units]
    await store(pool, rest)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(_without_diagnostics(got), _without_diagnostics(reference(world, METRICS, True)))
    # Conflicts found after the refresh exclude their units from the rolled-up sums too.
    extra = next(iter(u for u in early.exposures if u not in world.conflicts))
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key, exposed_at)"
            " VALUES ($1, $2, 'other', now())",
            world.key,
            extra,
        )
    world.conflicts.add(extra)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(_without_diagnostics(got), _without_diagnostics(reference(world, METRICS, True)))
    # A later refresh adds the late units' rows; the result does not change.
    await _refresh(pool, world, 36.0, cuped=True)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S, refresh=False)
    assert_close(_without_diagnostics(got), _without_diagnostics(reference(world, METRICS, True)))


async def test_until_before_the_watermark_falls_back_to_the_full_path(
    pool: asyncpg.Pool,
) -> None:
    world = make_world(seed=13)
    await store(pool, world)
    await _refresh(pool, world, 30.0, cuped=False)
    first = min(at for _, at, _ in world.exposures.values())
    for hours in (20.0, 40.0):  # before, then after the watermark
        until = first + timedelta(hours=hours)
        got = await _collect(pool, world, until=until, refresh=False)
        assert_close(got, reference(world, METRICS, False, until=until))


async def test_collect_refreshes_and_the_watermark_never_moves_back(
    pool: asyncpg.Pool,
) -> None:
    world = make_world(seed=14)
    await store(pool, world)
    got = await _collect(pool, world, cuped_lookback_s=LOOKBACK_S)
    assert_close(got, reference(world, METRICS, True))
    async with pool.acquire() as conn:
        current = await read_rollup(conn, world.key, METRICS, LOOKBACK_S)
        assert current is not None
        earlier = current.watermark - timedelta(days=1)
        again = await refresh_rollups(
            conn, world.key, METRICS, cuped_lookback_s=LOOKBACK_S, watermark=earlier
        )
        assert again == current
        rows = await conn.fetchval(
            "SELECT count(*) FROM analysis_rollups WHERE experiment_key = $1", world.key
        )
        state = await conn.fetchval(
            "SELECT columns FROM analysis_rollup_state WHERE experiment_key = $1", world.key
        )
    assert rows == len(world.exposures)
    assert json.loads(state)["lookback_s"] == LOOKBACK_S
