"""The SQL adapter: per-variant sufficient statistics computed inside PostgreSQL.

Per-unit rows never leave the database: each query aggregates events per unit in a
CTE, then per variant. All queries of one call run in one read-only REPEATABLE READ
transaction, so the metrics, unit counts and exclusions describe the same snapshot.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from verdict_analysis import stats

from . import (
    analysis_units,
    diagnostics,
    quantile_rollup,
    quantile_sql,
    rollup,
    rollup_moments,
    sql,
)
from .spec import CollectedStats, MetricDiagnostics, MetricSpec, Segment

__all__ = ["CollectedStats", "collect_stats", "segment_values"]

_WORK_MEM = "256MB"
"""Per-operation memory of the analysis queries: keeps the per-unit hash aggregate of a
million units and the quantile sorts in memory (PostgreSQL's memory, not this process's)."""


_COUNT_FIELDS = ("n_units",)


def _row_stats(
    row: Mapping[str, object] | None,
    i: int,
    cls: type[stats.MetricStats],
    fields: Sequence[str],
    units: int | None,
) -> stats.MetricStats:
    """Statistics of metric ``i`` from a result row; ``units`` overrides the count fields."""
    values: dict[str, object] = {}
    for name in fields:
        v = None if row is None else row[f"m{i}_{name}"]
        values[name] = 0 if v is None else v
        if units is not None and name in _COUNT_FIELDS:
            values[name] = units
    return cls(**values)  # type: ignore[arg-type]


async def _quantile_stats(
    conn: asyncpg.Connection,
    scope: sql.UnitScope,
    spec: MetricSpec,
    alpha: float,
    lower: datetime,
    rollup: quantile_sql.QuantileRollup | None,
) -> dict[str, stats.QuantileStats]:
    """One histogram statement, then one lookup of the interval's ranks (:mod:`.quantile_sql`)."""
    if rollup is not None and rollup.raw_since is not None:
        lower = min(lower, rollup.raw_since)
    # The planner joins the values to the two per-arm rows by sorting all the values; a
    # hash join does not sort. (Transaction-local: quantiles are the last statements.)
    await conn.execute("SET LOCAL enable_mergejoin = off")
    # The value-bucket expressions cost JIT a few hundred ms to emit per statement, more
    # than they save over the few million values an incremental analysis reads.
    await conn.execute("SET LOCAL jit = off")
    text, params = quantile_sql.quantile_stats_query(scope, spec, lower, rollup)
    by_variant: dict[str, stats.QuantileStats] = {}
    hists: dict[str, tuple[list[int], list[int], list[float], list[float]]] = {}
    for row in await conn.fetch(text, *params, timeout=None):
        key = row["variant_key"]
        by_variant[key] = stats.QuantileStats(
            quantile=spec.quantile,
            n_units=int(row["n_units"]),
            n_events=int(row["n_events"]),
            value=float(row["value"]),
            sum_events_sq=float(row["sum_events_sq"]),
            sum_below=float(row["sum_below"]),
            sum_below_sq=float(row["sum_below_sq"]),
            sum_events_below=float(row["sum_events_below"]),
            ci_alpha=alpha,
        )
        hists[key] = (row["buckets"], row["cumulative"], row["lows"], row["highs"])
    found: dict[tuple[str, int], float] = {}
    lookups: list[quantile_sql.RankLookup] = []
    wanted: list[tuple[str, int]] = []
    for key, q in by_variant.items():
        buckets, cumulative, lows, highs = hists[key]
        for rank in stats.outer_ci_ranks(q, alpha):
            j = bisect.bisect_left(cumulative, rank)
            if lows[j] == highs[j]:
                found[key, rank] = float(lows[j])
            else:
                below = cumulative[j - 1] if j else 0
                lookups.append(
                    quantile_sql.RankLookup(key, buckets[j], rank - below, lows[j], highs[j])
                )
                wanted.append((key, rank))
    if lookups:
        text, params = quantile_sql.values_at_ranks_query(scope, spec, lookups, lower, rollup)
        for r in await conn.fetch(text, *params, timeout=None):
            found[wanted[int(r["i"]) - 1]] = float(r["value"])
    for key, q in list(by_variant.items()):
        lo, hi = stats.outer_ci_ranks(q, alpha)
        by_variant[key] = replace(q, lower_value=found[key, lo], upper_value=found[key, hi])
    return by_variant


@dataclass(frozen=True)
class _Plan:
    """Which path each part of one collection takes (decided once, by `_plan`)."""

    scope: sql.UnitScope
    cuped_lookback_s: float | None
    rollups: bool
    """Read per-unit rollups (and rolled-up quantile values) plus the raw events after them."""
    has_columns: bool
    """Some metric is additive (computed from per-unit sums), not a quantile."""
    has_quantiles: bool

    @property
    def cuped(self) -> bool:
        return self.cuped_lookback_s is not None


@dataclass(frozen=True)
class _Units:
    """Analysed units per variant and the exposure times that bound the event scans."""

    counts: dict[str, int]
    first_exposed_at: datetime | None
    first_unrolled_at: datetime | None
    """Earliest exposure of a unit not yet in the rollup (None: all rolled up, or no rollup)."""


def _plan(
    experiment_key: str,
    variant_keys: Sequence[str],
    metrics: Sequence[MetricSpec],
    cuped_lookback_s: float | None,
    segment: Segment | None,
    until: datetime | None,
    rollups: bool,
) -> _Plan:
    for spec in metrics:
        spec.validate()
    return _Plan(
        scope=sql.UnitScope(experiment_key, tuple(variant_keys), segment, until),
        cuped_lookback_s=cuped_lookback_s,
        # A rollup may hold events of any ``ts`` (its watermark is on received_at): with
        # ``until`` the full path runs.
        rollups=rollups and until is None,
        has_columns=bool(sql.columns_of(metrics, cuped_lookback_s is not None)),
        has_quantiles=any(m.type is stats.MetricType.QUANTILE for m in metrics),
    )


async def collect_stats(
    conn: asyncpg.Connection,
    experiment_key: str,
    variant_keys: Sequence[str],
    control_key: str,
    metrics: Sequence[MetricSpec],
    *,
    cuped_lookback_s: float | None = None,
    segment: Segment | None = None,
    until: datetime | None = None,
    quantile_alpha: float = 0.05,
    rollups: bool = True,
    refresh: bool = True,
) -> CollectedStats:
    """Per-variant sufficient statistics of ``metrics`` for one experiment.

    Units are the experiment's exposures of ``variant_keys`` (first exposure wins), minus
    units later seen in another variant (counted in ``excluded_units``), restricted to
    ``segment`` and to exposures and events before ``until`` when given. With
    ``cuped_lookback_s``, MEAN and RATIO metrics carry the same metric measured over
    ``[exposed_at - lookback, exposed_at)`` as CUPED covariate. Quantile intervals use
    ranks at ``quantile_alpha``. Raises :class:`SpecError` for an unusable metric.

    Which path runs (docs/ARCHITECTURE.md has the map): with ``rollups`` (the default) and no
    ``until``, additive metrics read the per-variant moments of the experiment's rollup when
    they apply (:func:`_rows_from_moments`), else the per-unit rollup plus the raw events after
    its watermark (:func:`_rows_from_query`; without rollups the same query scans the raw
    events); quantile metrics read their rolled-up values plus the raw ones
    (:func:`_quantile_stats`). Results are the same on every path (but for events sent more than
    :data:`rollup.LATE_S` late, until the next fold). ``refresh`` first brings the rollup up to
    date (the caller holds the experiment's analysis lock on ``conn``, or accepts waiting on
    the rollup's own lock).

    When some exposure hashed another attribute than the unit id, units are analysis units
    (the hashed values, :mod:`.analysis_units`): unit counts and per-unit values are theirs,
    on every path but the moments' (which hold request units' sums).
    """
    plan = _plan(experiment_key, variant_keys, metrics, cuped_lookback_s, segment, until, rollups)
    if plan.rollups and refresh and (plan.has_columns or plan.has_quantiles):
        await rollup.refresh_rollups(
            conn, experiment_key, metrics, cuped_lookback_s=cuped_lookback_s
        )
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
        # Every statement here aggregates whole scans. On young tables (no statistics yet) the
        # planner estimates one row per input and picks nested loops that rescan the events once
        # per unit (quadratic: seconds at a few thousand events); hash joins are right at any size.
        await conn.execute("SET LOCAL enable_nestloop = off")
        if await analysis_units.hashed(conn, experiment_key):
            plan = replace(plan, scope=replace(plan.scope, grouped=True))
        read = None
        if plan.rollups and plan.has_columns:
            read = await rollup.read_rollup(conn, experiment_key, metrics, cuped_lookback_s)
        text, params = sql.excluded_units_query(plan.scope)
        excluded = int(await conn.fetchval(text, *params))
        units = await _unit_counts(conn, plan, variant_keys, read)
        rows = await _additive_rows(conn, plan, metrics, units, read)
        all_units = sql.counts_units_without_events(metrics) or read is not None
        inputs: list[stats.MetricInput] = []
        for i, spec in enumerate(metrics):
            if spec.type is stats.MetricType.QUANTILE:
                variants = await _quantile_variants(
                    conn, plan, spec, variant_keys, units, quantile_alpha
                )
            else:
                cls, fields = sql.stats_fields(spec, plan.cuped)
                variants = {
                    key: _row_stats(
                        rows.get(key), i, cls, fields, None if all_units else units.counts[key]
                    )
                    for key in variant_keys
                }
            inputs.append(
                stats.MetricInput(spec.key, spec.type, control_key, variants, spec.direction)
            )
        found = None
        if segment is None and until is None:
            found = await _diagnostics(conn, plan, metrics, rows)
    return CollectedStats(
        units=units.counts,
        excluded_units=excluded,
        metrics=inputs,
        first_exposed_at=units.first_exposed_at,
        diagnostics=found,
    )


async def _diagnostics(
    conn: asyncpg.Connection,
    plan: _Plan,
    metrics: Sequence[MetricSpec],
    rows: Mapping[str, Mapping[str, object]],
) -> tuple[MetricDiagnostics, ...]:
    """Per metric, the events left out (folded counts plus the raw tail) and capped units."""
    names = [n for spec in metrics for n in diagnostics.event_names(spec)]
    counts = await diagnostics.read_event_counts(
        conn, plan.scope.experiment_key, names, rollup.LATE_S, folded=plan.rollups
    )
    capped = [
        sum(int(row.get(f"m{i}_capped") or 0) for row in rows.values())  # type: ignore[call-overload]
        for i in range(len(metrics))
    ]
    return diagnostics.metric_diagnostics(metrics, counts, capped)


async def _unit_counts(
    conn: asyncpg.Connection,
    plan: _Plan,
    variant_keys: Sequence[str],
    read: sql.Rollup | None,
) -> _Units:
    counts = dict.fromkeys(variant_keys, 0)
    first: datetime | None = None
    unrolled: datetime | None = None
    text, params = sql.units_count_query(plan.scope, read)
    for r in await conn.fetch(text, *params):
        counts[r["variant_key"]] = int(r["units"])
        first = _earliest(first, r["first_exposed_at"])
        unrolled = _earliest(unrolled, r["first_unrolled_at"])
    return _Units(counts, first, unrolled)


async def _additive_rows(
    conn: asyncpg.Connection,
    plan: _Plan,
    metrics: Sequence[MetricSpec],
    units: _Units,
    read: sql.Rollup | None,
) -> dict[str, Mapping[str, object]]:
    """Per-variant rows of the additive metrics' sums: the path decision."""
    if not plan.has_columns or units.first_exposed_at is None:
        return {}
    if read is not None and rollup_moments.applies(plan.scope, metrics, read):
        moments = await rollup_moments.read_moments(conn, plan.scope.experiment_key, read.signature)
        if moments is not None:
            return await _rows_from_moments(conn, plan, metrics, read, moments)
    return await _rows_from_query(conn, plan, metrics, units, read)


async def _rows_from_moments(
    conn: asyncpg.Connection,
    plan: _Plan,
    metrics: Sequence[MetricSpec],
    read: sql.Rollup,
    moments: dict[str, rollup_moments.Moments],
) -> dict[str, Mapping[str, object]]:
    """The rollup's per-variant moments, corrected for the units touched since the fold."""
    columns = sql.columns_of(metrics, plan.cuped)
    text, params = rollup_moments.corrections_query(
        plan.scope, columns, rollup.lookback_of(metrics, plan.cuped_lookback_s), read
    )
    length = rollup_moments.moments_length(len(columns))
    # Few touched units (conflicts, the hour since the last fold) read their rollup rows and
    # exposures by primary key: a nested loop of index scans, not a hash of the whole rollup.
    # The refresh keeps the rollup's statistics current (ANALYZE). Its aggregate is a few
    # hundred expressions: JIT-compiling them with inlining and optimisation (chosen by cost
    # once the raw part is large) takes longer than the interpreter needs for a million units.
    await conn.execute("SET LOCAL enable_nestloop = on")
    await conn.execute("SET LOCAL jit = off")
    corrections = await conn.fetch(text, *params)
    await conn.execute("SET LOCAL enable_nestloop = off")
    await conn.execute("RESET jit")
    totals = rollup_moments.combine(moments, corrections, length)
    return dict(rollup_moments.metric_rows(metrics, plan.cuped, columns, totals))


async def _rows_from_query(
    conn: asyncpg.Connection,
    plan: _Plan,
    metrics: Sequence[MetricSpec],
    units: _Units,
    read: sql.Rollup | None,
) -> dict[str, Mapping[str, object]]:
    """One aggregate over the per-unit rollup (when read) plus the raw events after it."""
    assert units.first_exposed_at is not None
    lookback = timedelta(seconds=plan.cuped_lookback_s or 0.0)
    lower = units.first_exposed_at - lookback
    if read is not None and read.raw_since is not None:
        unrolled = units.first_unrolled_at
        lower = read.raw_since if unrolled is None else unrolled - lookback
        lower = min(lower, read.raw_since)
    text, params = sql.sufficient_stats_query(
        plan.scope, metrics, plan.cuped_lookback_s, lower=lower, rollup=read
    )
    return {row["variant_key"]: row for row in await conn.fetch(text, *params)}


async def _quantile_variants(
    conn: asyncpg.Connection,
    plan: _Plan,
    spec: MetricSpec,
    variant_keys: Sequence[str],
    units: _Units,
    alpha: float,
) -> dict[str, stats.MetricStats]:
    found: dict[str, stats.QuantileStats] = {}
    if units.first_exposed_at is not None:
        qread = None
        if plan.rollups:
            qread = await quantile_rollup.read_quantile_rollup(
                conn, plan.scope.experiment_key, spec
            )
        found = await _quantile_stats(conn, plan.scope, spec, alpha, units.first_exposed_at, qread)
    return {
        key: found.get(key)
        or stats.QuantileStats(spec.quantile, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, ci_alpha=alpha)
        for key in variant_keys
    }


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


async def segment_values(
    conn: asyncpg.Connection, experiment_key: str, dimension: str, limit: int = 20
) -> list[str]:
    """The ``limit`` most frequent values of ``segments[dimension]`` among the exposures."""
    rows = await conn.fetch(
        """SELECT segments ->> $2::text AS value FROM exposures
WHERE experiment_key = $1::text AND segments ? $2::text
GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $3::int""",
        experiment_key,
        dimension,
        limit,
    )
    return [r["value"] for r in rows if r["value"] is not None]
