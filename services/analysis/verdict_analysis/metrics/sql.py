"""SQL text for the analysis queries, built from metric specs with every value a parameter.

Only identifiers chosen here (column aliases) are spliced into the text; event names,
measures, windows and thresholds travel as ``$n`` parameters. The shape, for all
non-quantile metrics of an experiment at once (one scan of the events)::

    units     exposed, analysed units (not in exposure_conflicts; segment; until)
    per_unit  units LEFT JOIN events, GROUP BY unit: FILTERed counts / sums of each
              metric after (and, for CUPED, before) exposure; 0 without events
    caps      pooled percentile thresholds (only when a metric is percentile-capped)
    SELECT    per variant: COUNT, SUM, SUM of squares and cross products

Quantile metrics need event-level order statistics: see :func:`quantile_values_query`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from verdict_analysis import stats

from .spec import MetricSpec, Segment

__all__ = [
    "Params",
    "UnitScope",
    "counts_units_without_events",
    "excluded_units_query",
    "quantile_ranks_query",
    "quantile_values_query",
    "stats_fields",
    "sufficient_stats_query",
    "units_count_query",
]


@dataclass
class Params:
    """Positional query parameters; ``add`` returns the placeholder (``$n::type``)."""

    values: list[object] = field(default_factory=list)

    def add(self, value: object, sql_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{sql_type}"


@dataclass(frozen=True)
class UnitScope:
    """Which exposures are analysed."""

    experiment_key: str
    variant_keys: Sequence[str]
    segment: Segment | None = None
    until: datetime | None = None


def _exposure_filter(scope: UnitScope, p: Params, alias: str) -> str:
    conds = [f"{alias}.experiment_key = {p.add(scope.experiment_key, 'text')}"]
    if scope.segment is not None:
        dim = p.add(scope.segment.dimension, "text")
        conds.append(f"{alias}.segments ->> {dim} = {p.add(scope.segment.value, 'text')}")
    if scope.until is not None:
        conds.append(f"{alias}.exposed_at < {p.add(scope.until, 'timestamptz')}")
    return " AND ".join(conds)


def _units_cte(scope: UnitScope, p: Params) -> str:
    # NOT MATERIALIZED: inlined, the planner sees the exposures' statistics, hashes the
    # units (not the events) and can run the join and the per-unit aggregate in parallel.
    where = _exposure_filter(scope, p, "x")
    variants = p.add(list(scope.variant_keys), "text[]")
    return f"""units AS NOT MATERIALIZED (
    SELECT x.unit_id, x.variant_key, x.exposed_at
    FROM exposures x
    WHERE {where} AND x.variant_key = ANY({variants})
      AND NOT EXISTS (
        SELECT 1 FROM exposure_conflicts c
        WHERE c.experiment_key = x.experiment_key AND c.unit_id = x.unit_id))"""


def units_count_query(scope: UnitScope) -> tuple[str, list[object]]:
    """Analysed units per variant: columns ``variant_key, units``."""
    p = Params()
    units = _units_cte(scope, p)
    sql = f"WITH {units}\nSELECT variant_key, count(*) AS units FROM units GROUP BY variant_key"
    return sql, p.values


def excluded_units_query(scope: UnitScope) -> tuple[str, list[object]]:
    """Units of the scope (any variant) later seen in another variant: one count."""
    p = Params()
    where = _exposure_filter(scope, p, "x")
    sql = f"""SELECT count(*) FROM exposures x
WHERE {where} AND EXISTS (
    SELECT 1 FROM exposure_conflicts c
    WHERE c.experiment_key = x.experiment_key AND c.unit_id = x.unit_id)"""
    return sql, p.values


def _measure(p: Params, measure: str) -> str:
    return f"ev.measure_values[array_position(ev.measure_names, {p.add(measure, 'text')})]"


def _after(p: Params, spec: MetricSpec, event_name: str) -> str:
    cond = f"ev.name = {p.add(event_name, 'text')} AND ev.ts >= u.exposed_at"
    if spec.window_s is not None:
        secs = p.add(spec.window_s, "float8")
        cond += f" AND ev.ts < u.exposed_at + make_interval(secs => {secs})"
    return cond


def _before(p: Params, event_name: str) -> str:
    return f"ev.name = {p.add(event_name, 'text')} AND ev.ts < u.exposed_at"


def _value(p: Params, measure: str, cond: str) -> str:
    if not measure:
        return f"count(*) FILTER (WHERE {cond})"
    return f"sum({_measure(p, measure)}) FILTER (WHERE {cond})"


def _uses_cuped(spec: MetricSpec, cuped: bool) -> bool:
    return cuped and spec.type in (stats.MetricType.MEAN, stats.MetricType.RATIO)


def stats_fields(spec: MetricSpec, cuped: bool) -> tuple[type[stats.MetricStats], list[str]]:
    """The statistics class of a metric and its fields in the query's column order."""
    if spec.type is stats.MetricType.PROPORTION:
        return stats.ProportionStats, ["n", "successes"]
    if spec.type is stats.MetricType.MEAN:
        if _uses_cuped(spec, cuped):
            return stats.CupedStats, ["n", "sum_y", "sum_y_sq", "sum_x", "sum_x_sq", "sum_xy"]
        return stats.SampleStats, ["n", "sum", "sum_sq"]
    if spec.type is stats.MetricType.RATIO:
        if _uses_cuped(spec, cuped):
            names = [
                "n_units",
                "sum_num",
                "sum_num_sq",
                "sum_den",
                "sum_den_sq",
                "sum_num_den",
                "sum_pre_num",
                "sum_pre_num_sq",
                "sum_pre_den",
                "sum_pre_den_sq",
                "sum_pre_num_pre_den",
                "sum_num_pre_num",
                "sum_num_pre_den",
                "sum_den_pre_num",
                "sum_den_pre_den",
            ]
            return stats.RatioCupedStats, names
        names = ["n_units", "sum_num", "sum_num_sq", "sum_den", "sum_den_sq", "sum_num_den"]
        return stats.RatioStats, names
    raise ValueError(f"metric {spec.key!r}: {spec.type} is computed by the quantile queries")


def _cap_bounds(
    p: Params, i: int, col: str, capping: stats.Capping, caps: list[str]
) -> tuple[str, str]:
    """SQL expressions of the (lower, upper) thresholds for per-unit column ``col``."""
    bounds = []
    for side, level in (("lo", capping.lower), ("hi", capping.upper)):
        if level is None:
            bounds.append("NULL::float8")
        elif capping.kind is stats.CappingKind.ABSOLUTE:
            bounds.append(p.add(level, "float8"))
        else:
            name = f"cap{i}_{col}_{side}"
            lvl = p.add(level, "float8")
            caps.append(f"percentile_cont({lvl}) WITHIN GROUP (ORDER BY pu.{col}) AS {name}")
            bounds.append(f"caps.{name}")
    return bounds[0], bounds[1]


def sufficient_stats_query(
    scope: UnitScope, metrics: Sequence[MetricSpec], cuped_lookback_s: float | None
) -> tuple[str, list[object]]:
    """One query returning, per variant, the sufficient statistics of every metric.

    Columns: ``variant_key``, ``units``, then ``m{i}_{field}`` for metric ``i`` and each
    field of :func:`stats_fields`. Quantile metrics are skipped (their own queries).
    """
    p = Params()
    units = _units_cte(scope, p)
    cuped = cuped_lookback_s is not None
    aggs: list[str] = []  # per-unit aggregate columns over the events
    caps: list[str] = []
    outs: list[str] = []
    names: set[str] = set()
    for i, spec in enumerate(metrics):
        if spec.type is stats.MetricType.QUANTILE:
            continue
        spec.validate()
        use_cuped = _uses_cuped(spec, cuped)
        names.add(spec.event_name)
        cols: dict[str, str] = {}
        if spec.type is stats.MetricType.PROPORTION:
            cols[f"y{i}"] = f"(count(*) FILTER (WHERE {_after(p, spec, spec.event_name)}) > 0)::int"
        else:
            cols[f"y{i}"] = _value(p, spec.measure, _after(p, spec, spec.event_name))
            if use_cuped:
                cols[f"x{i}"] = _value(p, spec.measure, _before(p, spec.event_name))
        if spec.type is stats.MetricType.RATIO:
            names.add(spec.denominator_event_name)
            den = spec.denominator_event_name
            cols[f"d{i}"] = _value(p, spec.denominator_measure, _after(p, spec, den))
            if use_cuped:
                cols[f"xd{i}"] = _value(p, spec.denominator_measure, _before(p, den))
        for col, expr in cols.items():
            # LEFT JOIN: a unit without events has one all-NULL row, counted 0, summed 0.
            zero = "0" if spec.type is stats.MetricType.PROPORTION else "0::float8"
            aggs.append(f"coalesce({expr}, {zero}) AS {col}")
        ref = {col: f"pu.{col}" for col in cols}
        if spec.type is stats.MetricType.MEAN and spec.capping is not None:
            for col in cols:
                lo, hi = _cap_bounds(p, i, col, spec.capping, caps)
                ref[col] = f"least(greatest(pu.{col}, {lo}), {hi})"
        outs.extend(_variant_sums(spec, i, ref, use_cuped))
    if not outs:
        raise ValueError("no metric computed by the sufficient statistics query")
    lookback = p.add(cuped_lookback_s if cuped else 0.0, "float8")
    event_names = p.add(sorted(names), "text[]")
    until = ""
    if scope.until is not None:
        until = f" AND ev.ts < {p.add(scope.until, 'timestamptz')}"
    caps_cte = ""
    caps_join = ""
    if caps:
        caps_cte = f",\ncaps AS (SELECT {', '.join(caps)} FROM per_unit pu)"
        caps_join = " CROSS JOIN caps"
    # Without capping, units without events add nothing to any sum: an INNER join (which
    # PostgreSQL runs as a parallel hash join) suffices, and the caller takes the ``n``
    # fields from the unit counts. Capping needs every unit (zeros move percentiles).
    join = "LEFT JOIN" if caps or _capped(metrics) else "JOIN"
    sql = f"""WITH {units},
per_unit AS (
    SELECT u.variant_key, {", ".join(aggs)}
    FROM units u {join} events ev
      ON ev.unit_id = u.unit_id AND ev.name = ANY({event_names})
     AND ev.ts >= u.exposed_at - make_interval(secs => {lookback}){until}
    GROUP BY u.unit_id, u.variant_key){caps_cte}
SELECT pu.variant_key, count(*) AS units, {", ".join(outs)}
FROM per_unit pu{caps_join}
GROUP BY pu.variant_key"""
    return sql, p.values


def _capped(metrics: Sequence[MetricSpec]) -> bool:
    return any(m.type is stats.MetricType.MEAN and m.capping is not None for m in metrics)


def counts_units_without_events(metrics: Sequence[MetricSpec]) -> bool:
    """Whether :func:`sufficient_stats_query`'s ``n`` fields count every analysed unit;
    when not, they count units with events and the caller sets them from unit counts."""
    return _capped(metrics)


def _variant_sums(spec: MetricSpec, i: int, ref: dict[str, str], cuped: bool) -> list[str]:
    _, fields = stats_fields(spec, cuped)
    y = ref[f"y{i}"]
    if spec.type is stats.MetricType.PROPORTION:
        exprs = ["count(*)", f"sum({y})"]
    elif spec.type is stats.MetricType.MEAN:
        exprs = ["count(*)", f"sum({y})", f"sum({y} * {y})"]
        if cuped:
            x = ref[f"x{i}"]
            exprs += [f"sum({x})", f"sum({x} * {x})", f"sum({x} * {y})"]
    else:
        d = ref[f"d{i}"]
        exprs = ["count(*)", f"sum({y})", f"sum({y} * {y})", f"sum({d})", f"sum({d} * {d})"]
        exprs.append(f"sum({y} * {d})")
        if cuped:
            x, xd = ref[f"x{i}"], ref[f"xd{i}"]
            exprs += [f"sum({x})", f"sum({x} * {x})", f"sum({xd})", f"sum({xd} * {xd})"]
            exprs += [f"sum({x} * {xd})", f"sum({y} * {x})", f"sum({y} * {xd})"]
            exprs += [f"sum({d} * {x})", f"sum({d} * {xd})"]
    return [f"{e} AS m{i}_{name}" for e, name in zip(exprs, fields, strict=True)]


def _quantile_events_cte(scope: UnitScope, spec: MetricSpec, p: Params) -> str:
    units = _units_cte(scope, p)
    value = _measure(p, spec.measure)
    until = ""
    if scope.until is not None:
        until = f" AND ev.ts < {p.add(scope.until, 'timestamptz')}"
    return f"""WITH {units},
xs AS MATERIALIZED (
    SELECT u.variant_key, u.unit_id, {value} AS x
    FROM units u JOIN events ev ON ev.unit_id = u.unit_id
    WHERE {_after(p, spec, spec.event_name)}
{until}
      AND {value} IS NOT NULL)"""


def quantile_values_query(scope: UnitScope, spec: MetricSpec) -> tuple[str, list[object]]:
    """Per variant: ``n_events``, ``value`` (the order statistic ``ceil(n p)``), ``n_units``
    and the clustered sums of :class:`stats.QuantileStats`."""
    p = Params()
    events = _quantile_events_cte(scope, spec, p)
    level = p.add(spec.quantile, "float8")
    sql = f"""{events},
q AS (
    SELECT variant_key, count(*) AS n_events,
           percentile_disc({level}) WITHIN GROUP (ORDER BY x) AS value
    FROM xs GROUP BY variant_key),
pu AS (
    SELECT xs.variant_key, count(*)::float8 AS c,
           count(*) FILTER (WHERE xs.x <= q.value)::float8 AS s
    FROM xs JOIN q ON q.variant_key = xs.variant_key
    GROUP BY xs.variant_key, xs.unit_id)
SELECT q.variant_key, q.n_events, q.value, count(*) AS n_units,
       sum(pu.c * pu.c) AS sum_events_sq, sum(pu.s) AS sum_below,
       sum(pu.s * pu.s) AS sum_below_sq, sum(pu.c * pu.s) AS sum_events_below
FROM q JOIN pu ON pu.variant_key = q.variant_key
GROUP BY q.variant_key, q.n_events, q.value"""
    return sql, p.values


def quantile_ranks_query(
    scope: UnitScope, spec: MetricSpec, ranks: dict[str, tuple[int, int, int]]
) -> tuple[str, list[object]]:
    """Per variant, the values at 1-based ranks ``(lower, upper)`` of ``ranks[variant]``
    (``(lower, upper, n_events)``); columns ``variant_key, lower_value, upper_value``.

    ``percentile_disc(f)`` returns rank ``ceil(f n)``; ``f = (rank - 0.5) / n`` hits the
    rank exactly whatever the rounding of ``f n``."""
    p = Params()
    events = _quantile_events_cte(scope, spec, p)
    keys = list(ranks)
    lo = p.add([(ranks[k][0] - 0.5) / ranks[k][2] for k in keys], "float8[]")
    hi = p.add([(ranks[k][1] - 0.5) / ranks[k][2] for k in keys], "float8[]")
    sql = f"""{events}
SELECT xs.variant_key,
       percentile_disc(r.lo) WITHIN GROUP (ORDER BY xs.x) AS lower_value,
       percentile_disc(r.hi) WITHIN GROUP (ORDER BY xs.x) AS upper_value
FROM xs JOIN unnest({p.add(keys, "text[]")}, {lo}, {hi}) AS r(variant_key, lo, hi)
  ON r.variant_key = xs.variant_key
GROUP BY xs.variant_key, r.lo, r.hi"""
    return sql, p.values
