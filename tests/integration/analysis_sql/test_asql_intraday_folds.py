"""Intraday folds on the ``received_at`` watermark: hourly folds and late events stay exact.

A rollup holds the events received before its watermark, whatever their ``ts``. Each
test folds a world hour by hour and checks the incremental statistics (moments path and
per-unit path, quantiles included) against the full path and the Python reference, to a
relative 1e-9, with events that arrive late: within ``LATE_S`` they count at once,
later ones from the next fold on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest
from test_asql_collect_stats import (
    LOOKBACK_S,
    METRICS,
    UNCAPPED,
    VARIANTS,
    Event,
    World,
    assert_close,
    make_world,
    reference,
    store,
)

from verdict_analysis.metrics import CollectedStats, MetricSpec, sql
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import LATE_S, next_watermark, read_rollup, refresh_rollups
from verdict_analysis.metrics.rollup_moments import read_moments, rebuild_moments

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _collect(
    pool: asyncpg.Pool, world: World, metrics: list[MetricSpec], **kwargs: object
) -> CollectedStats:
    async with pool.acquire() as conn:
        return await collect_stats(
            conn,
            world.key,
            VARIANTS,
            "control",
            metrics,
            cuped_lookback_s=LOOKBACK_S,
            **kwargs,  # type: ignore[arg-type]
        )


async def _fold(
    pool: asyncpg.Pool, world: World, metrics: list[MetricSpec], mark: datetime
) -> None:
    async with pool.acquire() as conn:
        await refresh_rollups(conn, world.key, metrics, cuped_lookback_s=LOOKBACK_S, watermark=mark)


async def _check(pool: asyncpg.Pool, world: World, metrics: list[MetricSpec]) -> None:
    got = await _collect(pool, world, metrics, refresh=False)
    assert_close(got, await _collect(pool, world, metrics, rollups=False))
    assert_close(got, reference(world, metrics, True))


def _late(world: World, received: datetime, age: timedelta, n: int) -> World:
    """Events of the ``n`` earliest-exposed units sent ``age`` before ``received`` (after
    their unit's exposure), received then; added to ``world`` and returned as a world to store."""
    late = World(world.key)
    earliest = sorted(world.exposures.items(), key=lambda item: item[1][1])[:n]
    for unit, (_, exposed, _) in earliest:
        ts = max(received - age, exposed + timedelta(seconds=1))
        for name, measures in (
            ("llm.call", {"latency_ms": 123.0, "cost_usd": 0.5}),
            ("convert", {}),
            ("thumbs", {"up": 1.0}),
        ):
            event = Event(unit, name, ts, measures, received)
            late.events.append(event)
            world.events.append(event)
    return late


@pytest.mark.parametrize("moments", [True, False])
async def test_hourly_folds_with_late_events_equal_full_and_reference(
    pool: asyncpg.Pool, moments: bool
) -> None:
    metrics = UNCAPPED if moments else METRICS
    world = make_world(seed=31 + moments)
    await store(pool, world)
    start = min(at for _, at, _ in world.exposures.values()) + timedelta(hours=20)
    await _fold(pool, world, metrics, start)
    await _check(pool, world, metrics)
    for hour in range(1, 4):
        mark = start + timedelta(hours=hour)
        # Received after the last fold: one batch sent within LATE_S (read raw at once),
        # one sent long before (older partitions: counted by the next fold).
        recent = _late(world, mark - timedelta(minutes=30), timedelta(hours=5), 20)
        await store(pool, recent)
        await _check(pool, world, metrics)
        old = World(world.key)
        old.events = list(world.events)
        stale = _late(old, mark - timedelta(minutes=20), timedelta(seconds=LATE_S + 7200), 15)
        await store(pool, stale)
        world.events = old.events
        await _fold(pool, world, metrics, mark)
        await _check(pool, world, metrics)
    if moments:
        # The moments kept by the folds equal the ones rebuilt from the rows.
        async with pool.acquire() as conn:
            read = await read_rollup(conn, world.key, metrics, LOOKBACK_S)
            assert read is not None and read.complete
            kept = await read_moments(conn, world.key, read.signature)
            async with conn.transaction():
                k = len(sql.columns_of(metrics, True))
                await rebuild_moments(conn, world.key, read.signature, k)
            rebuilt = await read_moments(conn, world.key, read.signature)
        assert kept is not None and rebuilt is not None and kept.keys() == rebuilt.keys()
        for key, (units, vector) in kept.items():
            assert units == rebuilt[key][0]
            for a, b in zip(vector, rebuilt[key][1], strict=True):
                assert abs(a - b) <= 1e-9 * max(abs(b), 1.0)


async def test_an_event_sent_beyond_late_s_counts_from_the_next_fold(pool: asyncpg.Pool) -> None:
    world = make_world(seed=33)
    await store(pool, world)
    mark = min(at for _, at, _ in world.exposures.values()) + timedelta(hours=30)
    await _fold(pool, world, UNCAPPED, mark)
    before = await _collect(pool, world, UNCAPPED, refresh=False)
    stale = _late(world, mark + timedelta(minutes=5), timedelta(seconds=LATE_S + 3600), 10)
    await store(pool, stale)
    # Not read raw yet (its partition is before the watermark minus LATE_S) ...
    assert_close(await _collect(pool, world, UNCAPPED, refresh=False), before)
    # ... but never lost: the next fold counts it.
    await _fold(pool, world, UNCAPPED, mark + timedelta(hours=1))
    await _check(pool, world, UNCAPPED)


async def test_next_watermark_is_a_step_behind_the_clock(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        mark = await next_watermark(conn, fold_s=3600.0, grace_s=300.0)
    # Aligned, and behind the clock (further when another transaction is open).
    assert mark.timestamp() % 3600 == 0
    assert mark <= now - timedelta(seconds=300)
