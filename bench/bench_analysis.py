"""Benchmark: a full in-database analysis against one raw aggregate scan of the same events.

    python bench/bench_analysis.py            # writes bench/results/analysis.json
    python bench/bench_analysis.py --keep     # keeps the generated database for reruns
    python bench/bench_analysis.py --reuse verdict_bench_analysis   # skips generation
    python bench/bench_analysis.py --units 200000 --events 2000000 --out /tmp/a.json  # reduced

1,000,000 exposed units (two variants) and 10,000,000 events generated inside PostgreSQL
with ``generate_series`` in a separate database, created and dropped here. Four metrics:
conversion (binomial), cost per unit (mean, CUPED with a 3-day lookback), thumbs-up rate
(ratio) and p95 latency (clustered quantile). The baseline is one ``count``/``sum``/``sum``
of squares scan over the same events; both are timed warm, best of ``REPEATS``. Peak
resident memory is this (analysis) process's VmHWM; PostgreSQL's memory is separate.

Events are received (``received_at``) up to 30 s after their ``ts``, 1% of them up to 12
hours late. Two analyses are timed: the cold full one (``rollups=False``: every event read
raw) and the incremental one the scheduler runs every interval (``rollups=True``: rollup
rows, and for quantiles the rolled-up values, plus the raw events received after the
watermark), with the rollups current, with one hour of raw events (the steady state with
hourly folds: ``incremental_open_hour``) and with one whole day. The rollup's cost is
reported as a build up to yesterday's start, a fold of 22 hours (``rollup_daily_fold_s``)
and an hourly fold (the slower of the last two hours'). ``incremental_diagnostics_s`` is the part of
the incremental analysis that counts the events left out (diagnostics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import asyncpg

from verdict_analysis import stats
from verdict_analysis.metrics import CollectedStats, MetricSpec, diagnostics
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import LATE_S, drop_rollups, refresh_rollups
from verdict_platform.db import with_database
from verdict_platform.migrator import migrate

UNITS, EVENTS, CHUNK, REPEATS = 1_000_000, 10_000_000, 1_000_000, 3
RATIO_TARGET, RSS_TARGET_MB = 3.0, 300.0
DB = "verdict_bench_analysis"
EXPERIMENT, VARIANTS = "bench", ("control", "treatment")
RESULTS = Path(__file__).resolve().parent / "results" / "analysis.json"

METRICS = [
    MetricSpec("converted", stats.MetricType.PROPORTION, "convert", window_s=7 * 86400.0),
    MetricSpec("cost", stats.MetricType.MEAN, "llm.call", "cost_usd"),
    MetricSpec("thumbs_up_rate", stats.MetricType.RATIO, "thumbs", "up", "thumbs"),
    MetricSpec(
        "p95_latency",
        stats.MetricType.QUANTILE,
        "llm.call",
        "latency_ms",
        quantile=0.95,
        direction=stats.Direction.DECREASE,
    ),
]
LOOKBACK_S = 3 * 86400.0

# Exposures over days -5..-2, events over days -7..0 (the migration's partitions span
# today-8 .. today+3), so some events precede exposure (CUPED) and some units have none.
EXPOSURES_SQL = """
INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at, segments)
SELECT $1, 'u' || i, CASE WHEN i % 2 = 0 THEN 'control' ELSE 'treatment' END,
       date_trunc('day', now()) - interval '5 days' + (i % 259200) * interval '1 second',
       jsonb_build_object('country', (ARRAY['US', 'FR', 'DE', 'IN'])[1 + i % 4])
FROM generate_series(1, $2::int) AS i"""

EVENTS_SQL = """
INSERT INTO events (ts, event_id, unit_id, name, measure_names, measure_values, received_at)
SELECT r.ts, gen_random_uuid(), 'u' || (1 + (i::bigint * 7919) % $3),
       CASE WHEN r.k < 0.6 THEN 'llm.call' WHEN r.k < 0.7 THEN 'convert' ELSE 'thumbs' END,
       CASE WHEN r.k < 0.6 THEN ARRAY['latency_ms', 'cost_usd', 'output_tokens']
            WHEN r.k < 0.7 THEN ARRAY[]::text[] ELSE ARRAY['up'] END,
       CASE WHEN r.k < 0.6 THEN ARRAY[
                round((200 + 800 * r.a * r.a * (1 + (i % 2) * 0.05))::numeric, 1)::float8,
                r.a * 0.01, floor(r.a * 900)]
            WHEN r.k < 0.7 THEN ARRAY[]::float8[] ELSE ARRAY[(r.a < 0.6)::int::float8] END,
       least(r.ts + CASE WHEN r.late < 0.01 THEN r.late * 100 * interval '12 hours'
                         ELSE r.late * interval '30 seconds' END,
             date_trunc('day', now()) - interval '1 second')
FROM generate_series($1::bigint, $2::bigint) AS i,
     LATERAL (SELECT date_trunc('day', now()) - interval '7 days'
                     + (random() * 604000) * interval '1 second' AS ts,
                     random() AS k, random() AS a, random() AS late, i AS dummy) AS r"""

RAW_SCAN_SQL = """
SELECT count(*), sum(v), sum(v * v)
FROM (SELECT measure_values[array_position(measure_names, 'latency_ms')] AS v FROM events) s"""


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def generate(url: str, units: int, events: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(EXPOSURES_SQL, EXPERIMENT, units)
        # 0.5% of the units later seen in the other variant: excluded and counted.
        await conn.execute(
            "INSERT INTO exposure_conflicts (experiment_key, unit_id, variant_key, exposed_at)"
            " SELECT experiment_key, unit_id, 'other', exposed_at FROM exposures"
            " WHERE experiment_key = $1 AND hashtext(unit_id) % 200 = 0",
            EXPERIMENT,
        )
        for start in range(1, events + 1, CHUNK):
            end = min(start + CHUNK - 1, events)
            await conn.execute(EVENTS_SQL, start, end, units, timeout=3600)
            print(f"  events {end:>10,} ({time.perf_counter() - started:.0f} s)")
        await conn.execute("VACUUM ANALYZE", timeout=3600)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def best_of(fn: object, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times), result


async def measure(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)  # a reused database may predate the rollup tables
        n_events = await conn.fetchval("SELECT count(*) FROM events")
        n_units = await conn.fetchval(
            "SELECT count(*) FROM exposures WHERE experiment_key = $1::text", EXPERIMENT
        )

        async def raw() -> object:
            return await conn.fetchrow(RAW_SCAN_SQL, timeout=3600)

        async def analyse(
            rollups: bool, refresh: bool = True
        ) -> tuple[CollectedStats, stats.ExperimentAnalysis]:
            collected = await collect_stats(
                conn,
                EXPERIMENT,
                VARIANTS,
                "control",
                METRICS,
                cuped_lookback_s=LOOKBACK_S,
                rollups=rollups,
                refresh=refresh,
            )
            return collected, stats.analyze_experiment(
                collected.metrics, assignment_counts=collected.units
            )

        async def full() -> object:
            return await analyse(False)

        async def incremental() -> object:
            # What the scheduler runs every interval: refresh (a no-op while the rollup is
            # current) and read the rollup plus the raw events after its watermark.
            return await analyse(True)

        async def refresh(watermark: datetime | None) -> object:
            return await refresh_rollups(
                conn, EXPERIMENT, METRICS, cuped_lookback_s=LOOKBACK_S, watermark=watermark
            )

        raw_s, _ = await best_of(raw, REPEATS)
        full_s, result = await best_of(full, REPEATS)
        # Rollup cost: built up to yesterday's start (every event received before), then
        # folded: 22 hours at once, then hour by hour (the steady state's fold). The data
        # ends before today, and every event is received before today's start.
        await drop_rollups(conn, EXPERIMENT)
        # A reused database keeps the dropped rows' dead tuples: build into clean tables.
        await conn.execute(
            "VACUUM analysis_rollups, analysis_quantile_values, analysis_quantile_units",
            timeout=3600,
        )
        today = await conn.fetchval(
            "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        )
        build_s, _ = await best_of(lambda: refresh(today - timedelta(days=1)), 1)
        # The same analysis with a whole day of raw events after the watermark.
        open_day_s, open_day_result = await best_of(lambda: analyse(True, refresh=False), REPEATS)
        fold_s, _ = await best_of(lambda: refresh(today - timedelta(hours=2)), 1)
        hourly_fold_s, _ = await best_of(lambda: refresh(today - timedelta(hours=1)), 1)
        # The steady state: the last hour's events raw, the rest folded.
        open_hour_s, open_hour_result = await best_of(lambda: analyse(True, refresh=False), REPEATS)
        last_fold_s, _ = await best_of(lambda: refresh(today), 1)
        hourly_fold_s = max(hourly_fold_s, last_fold_s)
        incremental_s, inc_result = await best_of(incremental, REPEATS)

        async def event_counts() -> object:
            # The diagnostics' part of the incremental analysis: the folded counts plus the
            # events received after the watermark (inside the analysis's transaction).
            names = [n for m in METRICS for n in diagnostics.event_names(m)]
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await conn.execute("SET LOCAL enable_nestloop = off")
                return await diagnostics.read_event_counts(conn, EXPERIMENT, names, LATE_S)

        diagnostics_s, _ = await best_of(event_counts, REPEATS)
        raw_s = min(raw_s, (await best_of(raw, 1))[0])
    finally:
        await conn.close()
    collected, analysed = cast("tuple[CollectedStats, stats.ExperimentAnalysis]", result)
    _, inc_analysed = cast("tuple[CollectedStats, stats.ExperimentAnalysis]", inc_result)
    _, day_analysed = cast("tuple[CollectedStats, stats.ExperimentAnalysis]", open_day_result)
    _, hour_analysed = cast("tuple[CollectedStats, stats.ExperimentAnalysis]", open_hour_result)
    ratio = full_s / raw_s
    inc_ratio = incremental_s / raw_s
    rss = peak_rss_mb()
    return {
        "events": n_events,
        "exposed_units": n_units,
        "analysed_units": collected.units,
        "excluded_units": collected.excluded_units,
        "metrics": [m.key for m in METRICS],
        "raw_scan_s": round(raw_s, 3),
        "analysis_s": round(full_s, 3),
        "ratio": round(ratio, 2),
        "incremental_analysis_s": round(incremental_s, 3),
        "incremental_ratio": round(inc_ratio, 2),
        "incremental_diagnostics_s": round(diagnostics_s, 3),
        "incremental_open_day_s": round(open_day_s, 3),
        "incremental_open_day_ratio": round(open_day_s / raw_s, 2),
        "incremental_open_hour_s": round(open_hour_s, 3),
        "incremental_open_hour_ratio": round(open_hour_s / raw_s, 2),
        "rollup_build_s": round(build_s, 3),
        "rollup_daily_fold_s": round(fold_s, 3),
        "rollup_hourly_fold_s": round(hourly_fold_s, 3),
        "ratio_target": RATIO_TARGET,
        "ratio_ok": ratio <= RATIO_TARGET,
        "incremental_ratio_ok": inc_ratio <= RATIO_TARGET,
        "peak_rss_mb": round(rss, 1),
        "rss_target_mb": RSS_TARGET_MB,
        "rss_ok": rss <= RSS_TARGET_MB,
        "estimates": {m.key: {v.variant: v.estimate for v in m.variants} for m in analysed.metrics},
        "incremental_equals_full": all(
            _same(analysed, other) for other in (inc_analysed, day_analysed, hour_analysed)
        ),
    }


def _same(a: stats.ExperimentAnalysis, b: stats.ExperimentAnalysis) -> bool:
    """Whether two analyses agree on every estimate to a relative 1e-9."""
    for ma, mb in zip(a.metrics, b.metrics, strict=True):
        for va, vb in zip(ma.variants, mb.variants, strict=True):
            x, y = va.estimate, vb.estimate
            if x is None or y is None:
                if x is not y:
                    return False
            elif abs(x - y) > 1e-9 * max(abs(x), 1e-12):
                return False
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--reuse", metavar="DB", help="use an already generated database")
    parser.add_argument("--db", default=DB, help="name of the generated database")
    parser.add_argument("--units", type=int, default=UNITS, help="exposed units to generate")
    parser.add_argument("--events", type=int, default=EVENTS, help="events to generate")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    server = os.environ.get("VERDICT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = args.reuse or args.db
    url = with_database(server, name)
    generation_s = None
    if not args.reuse:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        generation_s = await generate(url, args.units, args.events)
    try:
        figures = await measure(url)
    finally:
        if not (args.keep or args.reuse):
            admin = await asyncpg.connect(server)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    report = {
        "benchmark": "analysis",
        "generation_s": None if generation_s is None else round(generation_s, 1),
        **figures,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
