"""The histogram quantile path equals the sorting path and the Python reference, exactly.

Values chosen to stress the buckets: negatives, both zeros, ties across units, values that
share a bucket and values at the edges of the float range.
"""

from __future__ import annotations

import itertools
import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from verdict_analysis import stats
from verdict_analysis.metrics import MetricSpec, quantile_sorted, quantile_sql, sql
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.rollup import refresh_rollups

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPECIAL = [-1e300, -2.5, -1.0, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1.0 + 2**-52, 2.0, 1e300]


async def test_value_bucket_preserves_order(pool: asyncpg.Pool) -> None:
    rng = np.random.default_rng(3)
    xs = sorted(
        SPECIAL
        + list(rng.normal(0, 1, 2000))
        + list(rng.lognormal(0, 20, 2000))
        + list(-rng.lognormal(0, 20, 2000))
        + [math.inf, -math.inf]
    )
    async with pool.acquire() as conn:
        buckets = await conn.fetchval(
            f"SELECT array_agg({quantile_sql.value_bucket('x')} ORDER BY i)"
            " FROM unnest($1::float8[]) WITH ORDINALITY AS t(x, i)",
            xs,
        )
    assert all(a <= b for a, b in itertools.pairwise(buckets))
    async with pool.acquire() as conn:
        nan = await conn.fetchval(
            f"SELECT {quantile_sql.value_bucket('x')} FROM (SELECT -'NaN'::float8 AS x) t"
        )
    assert nan > buckets[-1]  # PostgreSQL orders NaN (whatever its sign bit) last
    assert len(set(buckets)) > 1000  # narrow buckets, not one catch-all


def _world_rows(key: str, seed: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    exposures, events = [], []
    for i in range(400):
        unit, variant = f"{key}-u{i}", ("control", "treatment")[i % 2]
        at = now - timedelta(days=2) + timedelta(minutes=int(rng.integers(0, 2000)))
        exposures.append((key, unit, variant, at))
        for _ in range(int(rng.integers(0, 9))):
            kind = rng.random()
            if kind < 0.2:
                value = float(rng.choice(SPECIAL))
            elif kind < 0.5:
                value = float(round(rng.normal(0, 50)))  # many ties, negatives
            else:
                value = float(rng.lognormal(5, 2))
            ts = at + timedelta(minutes=int(rng.integers(0, 2400)))
            if ts < now + timedelta(hours=20):
                # received when sent: the rollup's watermark below falls inside the data
                events.append((ts, uuid.uuid4(), unit, "llm.call", ["v"], [value], ts))
    return exposures, events


async def _sorted_stats(
    conn: asyncpg.Connection, key: str, spec: MetricSpec
) -> dict[str, stats.QuantileStats]:
    scope = sql.UnitScope(key, ("control", "treatment"))
    text, params = quantile_sorted.quantile_values_query(scope, spec)
    out = {}
    for r in await conn.fetch(text, *params):
        q = stats.QuantileStats(
            spec.quantile,
            int(r["n_units"]),
            int(r["n_events"]),
            float(r["value"]),
            float(r["sum_events_sq"]),
            float(r["sum_below"]),
            float(r["sum_below_sq"]),
            float(r["sum_events_below"]),
        )
        lo, hi = stats.outer_ci_ranks(q, 0.05)
        text, params = quantile_sorted.quantile_ranks_query(
            scope, spec, {r["variant_key"]: (lo, hi, q.n_events)}
        )
        row = await conn.fetchrow(text, *params)
        out[r["variant_key"]] = replace(
            q, lower_value=row["lower_value"], upper_value=row["upper_value"]
        )
    return out


@pytest.mark.parametrize("level", [0.01, 0.5, 0.95, 0.999])
async def test_histogram_path_equals_sorting_path_with_and_without_rollup(
    pool: asyncpg.Pool, level: float
) -> None:
    key = f"asql-qh-{uuid.uuid4().hex[:8]}"
    exposures, events = _world_rows(key, seed=int(level * 1000))
    spec = MetricSpec("q", stats.MetricType.QUANTILE, "llm.call", "v", quantile=level)
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at)"
            " VALUES ($1, $2, $3, $4)",
            exposures,
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
            records=events,
        )
        want = await _sorted_stats(conn, key, spec)
        variants = ("control", "treatment")
        full = await collect_stats(conn, key, variants, "control", [spec], rollups=False)
        mark = min(e[3] for e in exposures) + timedelta(hours=30)
        await refresh_rollups(conn, key, [spec], watermark=mark)
        rolled = await collect_stats(conn, key, variants, "control", [spec], refresh=False)
    for got in (full, rolled):
        assert got.metrics[0].variants == want
