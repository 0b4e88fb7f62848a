"""Experiments hashed on another attribute: each hashed value is one analysis unit.

A small experiment bucketed by company, computed by hand: company A (users a1, a2) in
treatment, companies B (user b1) and C (user c1, no events) in control. Each user's events
count from its own exposure on, for its company; per-unit values, unit counts and the
quantiles' clustering are per company. The full and the incremental paths (a rollup plus the
raw events after its watermark, a user exposed after the fold) give the same numbers. Then
test_asql_collect_stats's random world, its users grouped into companies, against a Python
reference that sums each user's values into its company, every metric kind and path.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
from test_asql_collect_stats import METRICS as ALL_METRICS
from test_asql_collect_stats import (
    VARIANTS,
    World,
    analysed,
    assert_close,
    make_world,
    reference_diagnostics,
    store,
    unit_values,
)

from verdict_analysis import stats
from verdict_analysis.exposure_timeline import PostgresExposureCounts
from verdict_analysis.metrics import CollectedStats, MetricSpec, Segment
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import refresh_rollups

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOOKBACK_S = 3 * 86400.0

METRICS = [
    MetricSpec("converted", stats.MetricType.PROPORTION, "convert"),
    MetricSpec("calls", stats.MetricType.MEAN, "llm.call", ""),
    MetricSpec("cost", stats.MetricType.MEAN, "llm.call", "cost_usd"),
    MetricSpec(
        "cost_per_call",
        stats.MetricType.RATIO,
        "llm.call",
        "cost_usd",
        denominator_event_name="llm.call",
    ),
    MetricSpec("median_latency", stats.MetricType.QUANTILE, "llm.call", "latency_ms"),
]


def _t0() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)


async def _store(
    pool: asyncpg.Pool,
    key: str,
    t0: datetime,
    exposures: dict[str, tuple[str, str, timedelta]],
    events: list[tuple[str, str, timedelta, dict[str, float]]],
) -> None:
    """Exposures hashed on company_id (unit -> variant, company, offset from ``t0``) and
    events (unit, name, offset, measures), each received at its timestamp."""
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at,"
            " hash_attribute, hash_value) VALUES ($1, $2, $3, $4, 'company_id', $5)",
            [(key, f"{key}-{u}", v, t0 + at, c) for u, (v, c, at) in exposures.items()],
        )
        await conn.copy_records_to_table(
            "events",
            columns=[
                "ts",
                "event_id",
                "unit_id",
                "name",
                "measure_names",
                "measure_values",
                "received_at",
            ],
            records=[
                (t0 + at, uuid.uuid4(), f"{key}-{u}", name, list(m), list(m.values()), t0 + at)
                for u, name, at, m in events
            ],
        )


H = timedelta(hours=1)
M = timedelta(minutes=1)
EXPOSURES = {
    "a1": ("treatment", "A", 0 * H),
    "a2": ("treatment", "A", 2 * H),
    "b1": ("control", "B", 1 * H),
    "c1": ("control", "C", 1 * H),
}
EVENTS = [
    ("a1", "llm.call", -1 * H, {"cost_usd": 0.05, "latency_ms": 999.0}),  # before: CUPED only
    ("a1", "llm.call", 10 * M, {"cost_usd": 0.01, "latency_ms": 100.0}),
    ("a1", "convert", 30 * M, {}),
    ("a1", "llm.call", 3 * H, {"cost_usd": 0.02, "latency_ms": 200.0}),
    # After a1's exposure but before a2's own: a2's pre-exposure history, not a metric event.
    ("a2", "llm.call", 1 * H, {"cost_usd": 0.04, "latency_ms": 777.0}),
    ("a2", "llm.call", 150 * M, {"cost_usd": 0.03, "latency_ms": 300.0}),
    ("b1", "llm.call", 90 * M, {"cost_usd": 0.005, "latency_ms": 50.0}),
    ("b1", "convert", 2 * H, {}),
    ("b1", "convert", 4 * H, {}),  # a second conversion: B converted once
    ("stranger", "llm.call", 1 * H, {"cost_usd": 9.0, "latency_ms": 1e6}),  # never exposed
]


# Per company, by hand (arms: treatment A; control B, C). After exposure: A has a1's calls
# at 10 min and 3 h and a2's at 150 min (3 calls, cost 0.01 + 0.02 + 0.03) and a1's
# conversion; B one call (0.005) and two conversions (converted once); C nothing. Before
# exposure (CUPED): A has a1's call at -1 h (0.05) and a2's at 1 h, before a2's own exposure
# (0.04); B and C none.
CALLS = {"treatment": [3.0], "control": [1.0, 0.0]}
COST = {"treatment": [0.06], "control": [0.005, 0.0]}
PRE_CALLS = {"treatment": [2.0], "control": [0.0, 0.0]}
PRE_COST = {"treatment": [0.05 + 0.04], "control": [0.0, 0.0]}
CONVERTED = {"treatment": [True], "control": [True, False]}


def _by_hand(cuped: bool) -> dict[str, dict[str, stats.MetricStats]]:
    """Per metric and arm, the statistics of the per-company values above."""
    out: dict[str, dict[str, stats.MetricStats]] = {}
    for arm in VARIANTS:
        calls, cost = CALLS[arm], COST[arm]
        pre_calls, pre_cost = PRE_CALLS[arm], PRE_COST[arm]
        row: dict[str, stats.MetricStats] = {
            "converted": stats.ProportionStats.from_values(CONVERTED[arm]),
            "calls": stats.SampleStats.from_values(calls),
            "cost": stats.SampleStats.from_values(cost),
            "cost_per_call": stats.RatioStats.from_values(cost, calls),
        }
        if cuped:
            row["calls"] = stats.CupedStats.from_values(calls, pre_calls)
            row["cost"] = stats.CupedStats.from_values(cost, pre_cost)
            row["cost_per_call"] = stats.RatioCupedStats.from_values(
                cost, calls, pre_cost, pre_calls
            )
        for key, value in row.items():
            out.setdefault(key, {})[arm] = value
    # The median of A's 100, 200, 300 (rank 2), clustered by company: one unit of three
    # events, two of them at or below it.
    out["median_latency"] = {
        "treatment": stats.quantile_stats_from_events([100.0, 200.0, 300.0], ["A"] * 3, 0.5),
        "control": stats.quantile_stats_from_events([50.0], ["B"], 0.5),
    }
    return out


async def _collect(pool: asyncpg.Pool, key: str, **kwargs: object) -> CollectedStats:
    async with pool.acquire() as conn:
        return await collect_stats(conn, key, VARIANTS, "control", METRICS, **kwargs)  # type: ignore[arg-type]


def _assert_by_hand(got: CollectedStats, want: dict[str, dict[str, stats.MetricStats]]) -> None:
    assert got.units == {"control": 2, "treatment": 1}  # SRM counts companies
    assert got.excluded_units == 0
    for metric in got.metrics:
        assert_close(metric.variants, want[metric.key], metric.key)


def _metrics_only(collected: CollectedStats) -> CollectedStats:
    """The diagnostics count events at fold time: events this test stores after a fold with
    a ``received_at`` before its watermark (which ingest never writes) are not in them."""
    return dataclasses.replace(collected, diagnostics=None)


@pytest.mark.parametrize("cuped", [False, True])
async def test_companies_are_the_units_on_the_full_and_incremental_paths(
    pool: asyncpg.Pool, cuped: bool
) -> None:
    key = f"asql-company-{uuid.uuid4().hex[:8]}"
    t0 = _t0()
    await _store(pool, key, t0, EXPOSURES, EVENTS)
    lookback = LOOKBACK_S if cuped else None
    want = _by_hand(cuped)
    full = await _collect(pool, key, cuped_lookback_s=lookback, rollups=False)
    assert full.first_exposed_at == t0
    _assert_by_hand(full, want)
    # n_units of the quantile counts companies with events; a per-user clustering would see
    # two units in treatment (a1 with two events, a2 with one: 2^2 + 1^2 = 5 squared counts).
    median = next(m for m in full.metrics if m.key == "median_latency").variants["treatment"]
    assert isinstance(median, stats.QuantileStats)
    assert (median.n_units, median.n_events, median.value) == (1, 3, 200.0)
    assert median.sum_events_sq == 9.0 and median.sum_below == 2.0
    for mark in (t0 + 105 * M, t0 + 5 * H):  # a first build mid-data, then a fold of the rest
        async with pool.acquire() as conn:
            await refresh_rollups(conn, key, METRICS, cuped_lookback_s=lookback, watermark=mark)
        incremental = await _collect(pool, key, cuped_lookback_s=lookback, refresh=False)
        _assert_by_hand(incremental, want)
        assert_close(incremental, full)


async def test_a_user_exposed_after_the_fold_joins_its_company(pool: asyncpg.Pool) -> None:
    key = f"asql-company-{uuid.uuid4().hex[:8]}"
    t0 = _t0()
    await _store(pool, key, t0, EXPOSURES, EVENTS)
    async with pool.acquire() as conn:
        await refresh_rollups(conn, key, METRICS, watermark=t0 + 5 * H)
    # a3 of company A, exposed before the watermark but stored after the fold: no rollup row,
    # so all its events are read raw, and summed into A's rolled-up sums.
    await _store(
        pool,
        key,
        t0,
        {"a3": ("treatment", "A", 3 * H)},
        [("a3", "llm.call", 210 * M, {"cost_usd": 0.01, "latency_ms": 400.0})],
    )
    incremental = await _collect(pool, key, refresh=False)
    full = await _collect(pool, key, rollups=False)
    assert_close(_metrics_only(incremental), _metrics_only(full))
    assert incremental.units == {"control": 2, "treatment": 1}  # still one company in treatment
    got = {m.key: m.variants["treatment"] for m in incremental.metrics}
    assert_close(got["calls"], stats.SampleStats(1, 4.0, 16.0))
    assert_close(got["cost"], stats.SampleStats(1, 0.07, 0.07**2))
    assert_close(
        got["median_latency"],
        stats.quantile_stats_from_events([100.0, 200.0, 300.0, 400.0], ["A"] * 4, 0.5),
    )


async def test_a_user_later_seen_in_another_variant_leaves_its_company(
    pool: asyncpg.Pool,
) -> None:
    key = f"asql-company-{uuid.uuid4().hex[:8]}"
    t0 = _t0()
    await _store(pool, key, t0, EXPOSURES, EVENTS)

    async def conflict(unit: str) -> None:
        await pool.execute(
            "INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key, exposed_at)"
            " VALUES ($1, $2, 'control', now())",
            key,
            f"{key}-{unit}",
        )

    await conflict("a2")
    for kwargs in ({"rollups": False}, {}):
        got = await _collect(pool, key, **kwargs)
        assert got.units == {"control": 2, "treatment": 1}  # A keeps a1
        assert got.excluded_units == 0  # no company left out
        calls = next(m for m in got.metrics if m.key == "calls").variants["treatment"]
        assert_close(calls, stats.SampleStats(1, 2.0, 4.0))
    await conflict("a1")  # A has no user left: the company is excluded
    for kwargs in ({"rollups": False}, {}):
        got = await _collect(pool, key, **kwargs)
        assert got.units == {"control": 2, "treatment": 0}
        assert got.excluded_units == 1


async def test_experiments_without_hashed_values_keep_one_unit_per_user(
    pool: asyncpg.Pool,
) -> None:
    key = f"asql-company-{uuid.uuid4().hex[:8]}"
    t0 = _t0()
    await _store(pool, key, t0, EXPOSURES, EVENTS)
    # Recorded as hashed on the unit id by name: the same as not recorded.
    await pool.execute(
        "UPDATE exposures SET hash_attribute = 'id', hash_value = unit_id"
        " WHERE experiment_key = $1",
        key,
    )
    got = await _collect(pool, key, rollups=False)
    assert got.units == {"control": 2, "treatment": 2}
    calls = next(m for m in got.metrics if m.key == "calls").variants["treatment"]
    assert_close(calls, stats.SampleStats(2, 3.0, 2.0**2 + 1.0**2))


async def test_the_daily_timeline_counts_companies_on_their_first_day(
    pool: asyncpg.Pool,
) -> None:
    key = f"asql-company-{uuid.uuid4().hex[:8]}"
    t0 = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC) - timedelta(days=2)
    # a1 on day 0, a2 (same company) on day 1: A counts on day 0 only.
    exposures = {
        "a1": ("treatment", "A", 1 * H),
        "a2": ("treatment", "A", 25 * H),
        "b1": ("control", "B", 26 * H),
    }
    await _store(pool, key, t0, exposures, [])
    daily = await PostgresExposureCounts(pool).daily(key)
    day0, day1 = t0.date(), t0.date() + timedelta(days=1)
    assert daily == [(day0, "treatment", 1), (day1, "control", 1)]


# ---- a random world grouped into companies ---------------------------------------------


def _companies(world: World) -> dict[str, str]:
    """Users in companies of one variant each: 23 of about seven users per variant, and one
    user in five alone in its own."""
    out = {}
    for i, (unit, (variant, _, _)) in enumerate(world.exposures.items()):
        out[unit] = f"{variant}-{(i // 2) % 23 if i % 5 else i}"
    return out


def grouped_reference(
    world: World,
    company: dict[str, str],
    metrics: Sequence[MetricSpec],
    cuped: bool,
    segment: Segment | None = None,
) -> CollectedStats:
    """As test_asql_collect_stats.reference, over companies: each user's values (from its own
    exposure) summed into its company, quantile events clustered by company."""
    users = analysed(world, segment, None)
    members: dict[str, list[str]] = {}
    for u in users:
        members.setdefault(company[u], []).append(u)
    order = list(members)
    arm = {g: users[members[g][0]][0] for g in order}
    arms = {k: [g for g in order if arm[g] == k] for k in VARIANTS}

    def per_company(name: str, measure: str, window_s: float | None, pre: bool) -> list[float]:
        v = unit_values(world, users, name, measure, window_s, None, pre)
        return [sum(v[u] for u in members[g]) for g in order]

    def split(values: list[float]) -> dict[str, list[float]]:
        pos = {g: j for j, g in enumerate(order)}
        return {k: [values[pos[g]] for g in arms[k]] for k in VARIANTS}

    inputs = []
    capped: dict[str, int] = {}
    for spec in metrics:
        variants: dict[str, stats.MetricStats] = {}
        if spec.type is stats.MetricType.QUANTILE:
            for k in VARIANTS:
                xs, ids = [], []
                for e in world.events:
                    if e.unit in users and users[e.unit][0] == k and e.name == spec.event_name:
                        at = users[e.unit][1]
                        within = spec.window_s is None or e.ts < at + timedelta(
                            seconds=spec.window_s
                        )
                        if spec.measure in e.measures and at <= e.ts and within:
                            xs.append(e.measures[spec.measure])
                            ids.append(company[e.unit])
                variants[k] = stats.quantile_stats_from_events(xs, ids, spec.quantile)
        elif spec.type is stats.MetricType.PROPORTION:
            y = split(per_company(spec.event_name, "", spec.window_s, False))
            for k in VARIANTS:
                variants[k] = stats.ProportionStats.from_values([v > 0 for v in y[k]])
        elif spec.type is stats.MetricType.MEAN:
            ya = np.array(per_company(spec.event_name, spec.measure, spec.window_s, False))
            xa = np.array(per_company(spec.event_name, spec.measure, None, True))
            if spec.capping is not None:
                raw = ya
                ya, xa = stats.cap_values(ya, spec.capping), stats.cap_values(xa, spec.capping)
                capped[spec.key] = int(np.sum(ya != raw))
            y, x = split(list(ya)), split(list(xa))
            for k in VARIANTS:
                variants[k] = (
                    stats.CupedStats.from_values(y[k], x[k])
                    if cuped
                    else stats.SampleStats.from_values(y[k])
                )
        else:
            den, dm = spec.denominator_event_name, spec.denominator_measure
            num = split(per_company(spec.event_name, spec.measure, spec.window_s, False))
            d = split(per_company(den, dm, spec.window_s, False))
            for k in VARIANTS:
                if cuped:
                    x = split(per_company(spec.event_name, spec.measure, None, True))
                    xd = split(per_company(den, dm, None, True))
                    variants[k] = stats.RatioCupedStats.from_values(num[k], d[k], x[k], xd[k])
                else:
                    variants[k] = stats.RatioStats.from_values(num[k], d[k])
        inputs.append(stats.MetricInput(spec.key, spec.type, "control", variants, spec.direction))
    in_scope: dict[str, list[str]] = {}
    for u, (_, _, segs) in world.exposures.items():
        if segment is None or segs.get(segment.dimension) == segment.value:
            in_scope.setdefault(company[u], []).append(u)
    excluded = sum(all(u in world.conflicts for u in us) for us in in_scope.values())
    diagnostics = None if segment is not None else reference_diagnostics(world, metrics, capped)
    first = min((at for _, at in users.values()), default=None)
    counts = {k: len(arms[k]) for k in VARIANTS}
    return CollectedStats(counts, excluded, inputs, first, diagnostics)


@pytest.mark.parametrize("cuped", [False, True])
async def test_random_world_in_companies_equals_the_grouped_reference(
    pool: asyncpg.Pool, cuped: bool
) -> None:
    world = make_world(seed=17 + cuped, n_units=400)
    company = _companies(world)
    # Whole companies in conflict too: every user of one company seen in another variant.
    lost = next(g for g in sorted(set(company.values())) if g.startswith("treatment"))
    world.conflicts |= {u for u, g in company.items() if g == lost}
    await store(pool, world)
    await pool.executemany(
        "UPDATE exposures SET hash_attribute = 'company_id', hash_value = $3"
        " WHERE experiment_key = $1 AND unit_id = $2",
        [(world.key, u, g) for u, g in company.items()],
    )
    lookback = LOOKBACK_S if cuped else None
    want = grouped_reference(world, company, ALL_METRICS, cuped)
    assert want.excluded_units >= 1
    assert sum(want.units.values()) < len(world.exposures) // 2  # companies, not users

    async def collect(**kwargs: object) -> CollectedStats:
        kwargs["cuped_lookback_s"] = lookback
        async with pool.acquire() as conn:
            return await collect_stats(conn, world.key, VARIANTS, "control", ALL_METRICS, **kwargs)  # type: ignore[arg-type]

    assert_close(await collect(rollups=False), want)
    first = min(at for _, at, _ in world.exposures.values())
    for hours in (12.0, 30.0):  # a first build, then a fold of the events in between
        async with pool.acquire() as conn:
            await refresh_rollups(
                conn,
                world.key,
                ALL_METRICS,
                cuped_lookback_s=lookback,
                watermark=first + timedelta(hours=hours),
            )
        assert_close(await collect(refresh=False), want)
    segment = Segment("country", "US")
    want = grouped_reference(world, company, ALL_METRICS, cuped, segment)
    assert_close(await collect(segment=segment, refresh=False), want)
    assert_close(await collect(segment=segment, rollups=False), want)
