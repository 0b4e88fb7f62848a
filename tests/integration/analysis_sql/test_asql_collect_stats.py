"""collect_stats against the real PostgreSQL, checked against per-unit values computed in Python.

Synthetic experiment with a known effect: the SQL statistics (and the engine's results on
them) must equal the engine applied to per-unit data computed independently here from the
same events, to a relative 1e-9.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from verdict_analysis import stats
from verdict_analysis.metrics import CollectedStats, MetricDiagnostics, MetricSpec, Segment
from verdict_analysis.metrics.collect import collect_stats, segment_values

pytestmark = pytest.mark.asyncio(loop_scope="session")

VARIANTS = ("control", "treatment")
LOOKBACK_S = 3 * 86400.0
WINDOW_S = 86400.0


@dataclass(frozen=True)
class Event:
    unit: str
    name: str
    ts: datetime
    measures: dict[str, float]
    received: datetime | None = None
    """Its ``received_at``; None: its ``ts`` (delivered at once)."""


@dataclass
class World:
    """Exposures (first wins), conflicting units, events: the raw data both sides read."""

    key: str
    exposures: dict[str, tuple[str, datetime, dict[str, str]]] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)


def make_world(seed: int, n_units: int = 600) -> World:
    rng = random.Random(seed)
    key = f"asql-{uuid.uuid4().hex[:8]}"
    world = World(key)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=2)
    for i in range(n_units):
        unit = f"{key}-u{i}"
        variant = VARIANTS[i % 2]
        exposed = start + timedelta(seconds=rng.randrange(0, 36 * 3600), microseconds=7 * i)
        segs = {
            "country": rng.choice(["US", "US", "FR", "DE"]),
            "plan": rng.choice(["pro", "free"]),
        }
        world.exposures[unit] = (variant, exposed, segs)
        if rng.random() < 0.03:
            world.conflicts.add(unit)
        lift = 1.0 if variant == "control" else 0.8
        habit = rng.expovariate(1.0)
        # pre-exposure events (CUPED covariate), some beyond the lookback
        for _ in range(rng.randrange(0, 5)):
            ts = exposed - timedelta(seconds=rng.uniform(1, 4 * 86400))
            world.events.append(
                Event(
                    unit,
                    "llm.call",
                    ts,
                    {
                        "latency_ms": rng.uniform(100, 900) * habit + 50,
                        "cost_usd": rng.uniform(0, 0.02) * habit,
                    },
                )
            )
        for _ in range(rng.randrange(0, 8)):
            ts = exposed + timedelta(seconds=rng.uniform(0, 1.5 * WINDOW_S))
            if ts >= now + timedelta(hours=20):
                continue
            measures = {
                "latency_ms": round(rng.lognormvariate(6, 0.5) * lift * (0.5 + habit), 1),
                "cost_usd": rng.uniform(0, 0.02) * habit,
            }
            if rng.random() < 0.1:
                del measures["cost_usd"]  # a measure some events lack
            world.events.append(Event(unit, "llm.call", ts, measures))
        if rng.random() < (0.3 if variant == "control" else 0.4):
            world.events.append(
                Event(unit, "convert", exposed + timedelta(hours=rng.uniform(0, 30)), {})
            )
        if rng.random() < 0.5:
            world.events.append(
                Event(
                    unit,
                    "thumbs",
                    exposed + timedelta(hours=rng.uniform(0, 30)),
                    {"up": float(rng.random() < 0.6)},
                )
            )
        # boundary events: exactly at exposure (counts), exactly at the window's end (does not)
        if i % 17 == 0:
            world.events.append(
                Event(unit, "llm.call", exposed, {"latency_ms": 321.0, "cost_usd": 0.01})
            )
            world.events.append(
                Event(
                    unit,
                    "llm.call",
                    exposed + timedelta(seconds=WINDOW_S),
                    {"latency_ms": 999.0, "cost_usd": 0.5},
                )
            )
    for i in range(50):  # never exposed: ignored
        world.events.append(
            Event(
                f"{key}-stranger{i}",
                "llm.call",
                now - timedelta(hours=1),
                {"latency_ms": 1e6, "cost_usd": 9.0},
            )
        )
    return world


async def store(pool: asyncpg.Pool, world: World) -> None:
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at, segments)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            [(world.key, u, v, at, json.dumps(s)) for u, (v, at, s) in world.exposures.items()],
        )
        await conn.executemany(
            "INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key, exposed_at)"
            " VALUES ($1, $2, $3, now())",
            [(world.key, u, "other") for u in world.conflicts],
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
                (
                    e.ts,
                    uuid.uuid4(),
                    e.unit,
                    e.name,
                    list(e.measures),
                    list(e.measures.values()),
                    e.received or e.ts,
                )
                for e in world.events
            ],
        )


# ---- the independent Python reference -------------------------------------------------


def analysed(
    world: World, segment: Segment | None, until: datetime | None
) -> dict[str, tuple[str, datetime]]:
    return {
        u: (v, at)
        for u, (v, at, segs) in world.exposures.items()
        if u not in world.conflicts
        and (segment is None or segs.get(segment.dimension) == segment.value)
        and (until is None or at < until)
    }


def unit_values(
    world: World,
    units: dict[str, tuple[str, datetime]],
    name: str,
    measure: str,
    window_s: float | None,
    until: datetime | None,
    pre: bool,
) -> dict[str, float]:
    out: dict[str, float] = dict.fromkeys(units, 0.0)
    for e in world.events:
        if e.unit not in units or e.name != name or (until is not None and e.ts >= until):
            continue
        at = units[e.unit][1]
        if pre:
            if not (at - timedelta(seconds=LOOKBACK_S) <= e.ts < at):
                continue
        elif e.ts < at or (window_s is not None and e.ts >= at + timedelta(seconds=window_s)):
            continue
        if measure and measure not in e.measures:
            continue
        out[e.unit] += e.measures[measure] if measure else 1.0
    return out


def reference(
    world: World,
    metrics: Sequence[MetricSpec],
    cuped: bool,
    segment: Segment | None = None,
    until: datetime | None = None,
) -> CollectedStats:
    units = analysed(world, segment, until)
    order = list(units)
    arms = {k: [u for u in order if units[u][0] == k] for k in VARIANTS}
    inputs = []
    capped: dict[str, int] = {}
    for spec in metrics:
        variants: dict[str, stats.MetricStats] = {}
        if spec.type is stats.MetricType.QUANTILE:
            for k in VARIANTS:
                xs, ids = [], []
                for e in world.events:
                    if (
                        e.unit in units
                        and units[e.unit][0] == k
                        and e.name == spec.event_name
                        and spec.measure in e.measures
                        and (until is None or e.ts < until)
                    ):
                        at = units[e.unit][1]
                        if at <= e.ts and (
                            spec.window_s is None or e.ts < at + timedelta(seconds=spec.window_s)
                        ):
                            xs.append(e.measures[spec.measure])
                            ids.append(e.unit)
                variants[k] = stats.quantile_stats_from_events(xs, ids, spec.quantile)
        else:
            y = unit_values(
                world, units, spec.event_name, spec.measure, spec.window_s, until, False
            )
            x = unit_values(world, units, spec.event_name, spec.measure, None, until, True)
            if spec.type is stats.MetricType.PROPORTION:
                y = unit_values(world, units, spec.event_name, "", spec.window_s, until, False)
                for k in VARIANTS:
                    variants[k] = stats.ProportionStats.from_values([y[u] > 0 for u in arms[k]])
            elif spec.type is stats.MetricType.MEAN:
                ya, xa = np.array([y[u] for u in order]), np.array([x[u] for u in order])
                if spec.capping is not None:
                    raw = ya
                    ya, xa = stats.cap_values(ya, spec.capping), stats.cap_values(xa, spec.capping)
                    capped[spec.key] = int(np.sum(ya != raw))
                pos = {u: j for j, u in enumerate(order)}
                for k in VARIANTS:
                    idx = [pos[u] for u in arms[k]]
                    variants[k] = (
                        stats.CupedStats.from_values(ya[idx], xa[idx])
                        if cuped
                        else stats.SampleStats.from_values(ya[idx])
                    )
            else:
                d = unit_values(
                    world,
                    units,
                    spec.denominator_event_name,
                    spec.denominator_measure,
                    spec.window_s,
                    until,
                    False,
                )
                xd = unit_values(
                    world,
                    units,
                    spec.denominator_event_name,
                    spec.denominator_measure,
                    None,
                    until,
                    True,
                )
                for k in VARIANTS:
                    a = [arms[k]]
                    num, den = [y[u] for u in a[0]], [d[u] for u in a[0]]
                    if cuped:
                        variants[k] = stats.RatioCupedStats.from_values(
                            num, den, [x[u] for u in a[0]], [xd[u] for u in a[0]]
                        )
                    else:
                        variants[k] = stats.RatioStats.from_values(num, den)
        inputs.append(stats.MetricInput(spec.key, spec.type, "control", variants, spec.direction))
    counts = {k: len(arms[k]) for k in VARIANTS}
    excluded = sum(
        1
        for u, (_, at, segs) in world.exposures.items()
        if u in world.conflicts
        and (segment is None or segs.get(segment.dimension) == segment.value)
        and (until is None or at < until)
    )
    diagnostics = None
    if segment is None and until is None:
        diagnostics = reference_diagnostics(world, metrics, capped)
    first = min((at for _, at in units.values()), default=None)
    return CollectedStats(counts, excluded, inputs, first, diagnostics)


def reference_diagnostics(
    world: World, metrics: Sequence[MetricSpec], capped: dict[str, int]
) -> tuple[MetricDiagnostics, ...]:
    """Per metric, its events (numerator and denominator names) from the experiment's first
    exposure on: of exposed units before their exposure, and of units never exposed."""
    first = min(at for _, at, _ in world.exposures.values())
    out = []
    for spec in metrics:
        names = {spec.event_name}
        if spec.type is stats.MetricType.RATIO:
            names.add(spec.denominator_event_name)
        before = unexposed = 0
        for e in world.events:
            if e.name not in names or e.ts < first:
                continue
            if e.unit not in world.exposures:
                unexposed += 1
            elif e.ts < world.exposures[e.unit][1]:
                before += 1
        out.append(MetricDiagnostics(spec.key, before, unexposed, capped.get(spec.key, 0)))
    return tuple(out)


# ---- comparisons ------------------------------------------------------------------------


SHARED_TABLE_FIGURES = (".events_from_unexposed_units",)
"""Figures that count the events of every unit outside the experiment: other tests' events
share the table, so a world's reference cannot know them (test_asql_diagnostics checks them
with event names of its own)."""


def assert_close(got: object, want: object, path: str = "") -> None:
    if path.endswith(SHARED_TABLE_FIGURES):
        return
    if dataclasses.is_dataclass(got) and not isinstance(got, type):
        assert type(got) is type(want), path
        for f in dataclasses.fields(got):
            assert_close(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(got, dict):
        assert isinstance(want, dict) and set(got) == set(want), path
        for k in got:
            assert_close(got[k], want[k], f"{path}[{k}]")
    elif isinstance(got, list | tuple):
        assert isinstance(want, list | tuple) and len(got) == len(want), path
        for j, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_close(a, b, f"{path}[{j}]")
    elif isinstance(got, float) and isinstance(want, float | int):
        if math.isnan(got):
            assert math.isnan(want), path
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


METRICS = [
    MetricSpec("converted", stats.MetricType.PROPORTION, "convert"),
    MetricSpec(
        "cost",
        stats.MetricType.MEAN,
        "llm.call",
        "cost_usd",
        window_s=WINDOW_S,
        direction=stats.Direction.DECREASE,
    ),
    MetricSpec("calls", stats.MetricType.MEAN, "llm.call", ""),
    MetricSpec(
        "thumbs_up_rate", stats.MetricType.RATIO, "thumbs", "up", denominator_event_name="thumbs"
    ),
    MetricSpec(
        "cost_per_call",
        stats.MetricType.RATIO,
        "llm.call",
        "cost_usd",
        denominator_event_name="llm.call",
        window_s=WINDOW_S,
    ),
    MetricSpec(
        "p95_latency",
        stats.MetricType.QUANTILE,
        "llm.call",
        "latency_ms",
        quantile=0.95,
        window_s=WINDOW_S,
        direction=stats.Direction.DECREASE,
    ),
    MetricSpec("median_latency", stats.MetricType.QUANTILE, "llm.call", "latency_ms"),
    MetricSpec(
        "cost_capped_abs",
        stats.MetricType.MEAN,
        "llm.call",
        "cost_usd",
        capping=stats.Capping(stats.CappingKind.ABSOLUTE, upper=0.05),
    ),
    MetricSpec(
        "cost_capped_p90",
        stats.MetricType.MEAN,
        "llm.call",
        "cost_usd",
        capping=stats.Capping(stats.CappingKind.PERCENTILE, upper=0.9, lower=0.1),
    ),
]
UNCAPPED = [m for m in METRICS if not (m.type is stats.MetricType.MEAN and m.capping is not None)]
"""The metrics the rollup moments serve (capped means need the per-unit values)."""


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(seed=20240601)


@pytest.fixture(scope="module")
async def stored(pool: asyncpg.Pool, world: World) -> World:
    await store(pool, world)
    return world


async def collect(pool: asyncpg.Pool, world: World, **kwargs: object) -> CollectedStats:
    async with pool.acquire() as conn:
        return await collect_stats(conn, world.key, VARIANTS, "control", METRICS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cuped", [False, True])
async def test_sql_statistics_equal_python_per_unit_reference(
    pool: asyncpg.Pool, stored: World, cuped: bool
) -> None:
    got = await collect(pool, stored, cuped_lookback_s=LOOKBACK_S if cuped else None)
    want = reference(stored, METRICS, cuped)
    assert_close(got, want)
    plan = stats.AnalysisPlan()
    assert_close(
        stats.analyze_experiment(got.metrics, plan, assignment_counts=got.units),
        stats.analyze_experiment(want.metrics, plan, assignment_counts=want.units),
    )


async def test_known_effect_is_detected(pool: asyncpg.Pool, stored: World) -> None:
    got = await collect(pool, stored)
    analysis = stats.analyze_experiment(
        got.metrics, stats.AnalysisPlan(correction=stats.Correction.NONE)
    )
    by_key = {m.key: m for m in analysis.metrics}
    latency = by_key["median_latency"].comparisons[0].absolute
    assert latency is not None and latency.estimate < 0


async def test_conflicting_units_are_excluded_and_counted(
    pool: asyncpg.Pool, stored: World
) -> None:
    got = await collect(pool, stored)
    assert got.excluded_units == len(stored.conflicts) > 0
    assert sum(got.units.values()) == len(stored.exposures) - len(stored.conflicts)


async def test_segment_breakdown_equals_reference(pool: asyncpg.Pool, stored: World) -> None:
    segment = Segment("country", "FR")
    got = await collect(pool, stored, segment=segment, cuped_lookback_s=LOOKBACK_S)
    assert_close(got, reference(stored, METRICS, True, segment=segment))


async def test_until_cuts_exposures_and_events(pool: asyncpg.Pool, stored: World) -> None:
    until = min(at for _, at, _ in stored.exposures.values()) + timedelta(hours=20)
    got = await collect(pool, stored, until=until)
    assert_close(got, reference(stored, METRICS, False, until=until))


async def test_segment_values_are_most_frequent_first(pool: asyncpg.Pool, stored: World) -> None:
    async with pool.acquire() as conn:
        values = await segment_values(conn, stored.key, "country")
    counts: dict[str, int] = defaultdict(int)
    for _, _, segs in stored.exposures.values():
        counts[segs["country"]] += 1
    assert values[0] == max(counts, key=lambda k: counts[k])
    assert set(values) == set(counts)


async def test_experiment_without_data_gives_empty_arms(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        got = await collect_stats(
            conn, "asql-nothing", VARIANTS, "control", METRICS, cuped_lookback_s=LOOKBACK_S
        )
    assert got.units == {"control": 0, "treatment": 0} and got.excluded_units == 0
    analysis = stats.analyze_experiment(got.metrics)
    assert all(m.comparisons == () or m.comparisons[0].reason is not None for m in analysis.metrics)
