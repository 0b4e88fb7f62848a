"""The events the analysis leaves out, counted in PostgreSQL, against a count made here in Python.

Events before their unit's exposure and events of units never exposed are counted per metric
(numerator and denominator names) from the experiment's first exposure on. The incremental
count (each fold adds the events it stages; an analysis adds the events received since)
must equal the full count over every event and the independent Python count, through folds,
late events and a metric added later. Each world's event names carry a tag of their own, so
other tests' events in the shared table do not enter the counts.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest
from test_asql_collect_stats import (
    LOOKBACK_S,
    METRICS,
    VARIANTS,
    Event,
    World,
    make_world,
    reference_diagnostics,
    store,
)

from verdict_analysis import stats
from verdict_analysis.metrics import CollectedStats, MetricDiagnostics, MetricSpec, Segment
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import LATE_S, refresh_rollups

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _tagged(tag: str) -> tuple[World, list[MetricSpec]]:
    """A world and the metrics, every event name suffixed with `tag`; strangers (never
    exposed) send every kind of event, and some exposed units act before their exposure."""
    world = make_world(seed=int(tag, 16) % 1000)
    first = min(at for _, at, _ in world.exposures.values())
    for i, (unit, (_, exposed, _)) in enumerate(list(world.exposures.items())[:40]):
        if exposed - timedelta(minutes=10) >= first:
            world.events.append(Event(unit, "convert", exposed - timedelta(minutes=10), {}))
        world.events.append(Event(f"{world.key}-ghost{i}", "thumbs", exposed, {"up": 1.0}))
    world.events.append(Event(f"{world.key}-old", "convert", first - timedelta(hours=1), {}))
    world.events = [dataclasses.replace(e, name=f"{e.name}.{tag}") for e in world.events]
    metrics = [
        dataclasses.replace(
            m,
            event_name=f"{m.event_name}.{tag}",
            denominator_event_name=(
                f"{m.denominator_event_name}.{tag}" if m.denominator_event_name else ""
            ),
        )
        for m in METRICS
    ]
    return world, metrics


def _capped(collected: CollectedStats) -> dict[str, int]:
    assert collected.diagnostics is not None
    return {d.key: d.capped_units for d in collected.diagnostics}


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


async def _fold(pool: asyncpg.Pool, world: World, metrics: list[MetricSpec], at: datetime) -> None:
    async with pool.acquire() as conn:
        await refresh_rollups(conn, world.key, metrics, cuped_lookback_s=LOOKBACK_S, watermark=at)


async def _check(pool: asyncpg.Pool, world: World, metrics: list[MetricSpec]) -> None:
    incremental = await _collect(pool, world, metrics, refresh=False)
    full = await _collect(pool, world, metrics, rollups=False)
    assert incremental.diagnostics == full.diagnostics
    want = reference_diagnostics(world, metrics, _capped(full))
    assert full.diagnostics == want


async def test_full_count_equals_python_and_sees_every_kind(pool: asyncpg.Pool) -> None:
    world, metrics = _tagged(uuid.uuid4().hex[:6])
    await store(pool, world)
    got = await _collect(pool, world, metrics, rollups=False)
    assert got.diagnostics is not None
    by_key = {d.key: d for d in got.diagnostics}
    # Each kind occurs in this world: the test is not vacuous.
    assert by_key["converted"].events_before_exposure > 0
    assert by_key["thumbs_up_rate"].events_from_unexposed_units >= 40
    assert by_key["calls"].events_from_unexposed_units >= 50
    assert by_key["cost_capped_abs"].capped_units > 0
    assert by_key["cost_capped_p90"].capped_units > 0
    assert by_key["converted"].capped_units == 0
    assert got.diagnostics == reference_diagnostics(world, metrics, _capped(got))


async def test_folds_and_the_raw_tail_equal_the_full_count(pool: asyncpg.Pool) -> None:
    world, metrics = _tagged(uuid.uuid4().hex[:6])
    tag = metrics[0].event_name.split(".", 1)[1]
    # Half the events first; the rest are received after the first fold (the raw tail).
    mark = min(at for _, at, _ in world.exposures.values()) + timedelta(hours=30)
    early = World(world.key, dict(world.exposures), set(world.conflicts))
    early.events = [e for e in world.events if e.ts < mark]
    await store(pool, early)
    await _fold(pool, world, metrics, mark)
    late = World(world.key)
    received = mark + timedelta(minutes=30)
    late.events = [dataclasses.replace(e, received=received) for e in world.events if e.ts >= mark]
    # Sent late but within a day: read raw at once; a stranger among them.
    recent = [
        Event(f"{world.key}-late-ghost", f"convert.{tag}", mark - timedelta(hours=3), {}, received)
    ]
    late.events += recent
    await store(pool, late)
    world.events += recent
    await _check(pool, world, metrics)
    # Sent more than a day late: counted from the next fold on, like the metrics.
    stale = Event(
        f"{world.key}-stale-ghost",
        f"thumbs.{tag}",
        mark - timedelta(seconds=LATE_S + 3600),
        {"up": 0.0},
        received,
    )
    await store(pool, World(world.key, events=[stale]))
    before = await _collect(pool, world, metrics, refresh=False)
    await _fold(pool, world, metrics, mark + timedelta(hours=1))
    world.events.append(stale)
    after = await _collect(pool, world, metrics, refresh=False)
    unexposed = [
        {d.key: d.events_from_unexposed_units for d in c.diagnostics or ()} for c in (before, after)
    ]
    assert unexposed[1]["thumbs_up_rate"] == unexposed[0]["thumbs_up_rate"] + 1
    await _check(pool, world, metrics)
    # A metric added later reads a name never folded: counted over every event at once.
    extra = MetricSpec("regenerations", stats.MetricType.MEAN, f"regenerate.{tag}")
    added = [Event(f"{world.key}-ghost-r", f"regenerate.{tag}", mark, {}, mark)]
    await store(pool, World(world.key, events=added))
    world.events += added
    await _check(pool, world, [*metrics, extra])
    await _fold(pool, world, [*metrics, extra], mark + timedelta(hours=2))
    await _check(pool, world, [*metrics, extra])


async def test_no_diagnostics_for_a_segment_or_until(pool: asyncpg.Pool) -> None:
    world, metrics = _tagged(uuid.uuid4().hex[:6])
    await store(pool, world)
    segment = await _collect(pool, world, metrics, segment=Segment("country", "FR"))
    until = await _collect(pool, world, metrics, until=datetime.now().astimezone())
    assert segment.diagnostics is None and until.diagnostics is None


async def test_an_experiment_without_exposures_counts_nothing(pool: asyncpg.Pool) -> None:
    world, metrics = _tagged(uuid.uuid4().hex[:6])
    world.exposures.clear()
    await store(pool, world)
    got = await _collect(pool, world, metrics)
    assert got.diagnostics == tuple(MetricDiagnostics(m.key, 0, 0, 0) for m in metrics)
