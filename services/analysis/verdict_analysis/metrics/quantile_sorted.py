"""Quantile statistics by sorting every qualifying event: the reference path.

Two full passes per arm (``percentile_disc`` sorts all values). :mod:`.quantile_sql`
computes the same numbers without the sorts (and from the quantile rollup); these queries
stay as the simple baseline it is checked against.
"""

from __future__ import annotations

from datetime import datetime

from .spec import MetricSpec
from .sql import Column, Params, UnitScope, _event_join, _measure, _units_cte

__all__ = ["quantile_ranks_query", "quantile_values_query"]


def _quantile_events_cte(
    scope: UnitScope, spec: MetricSpec, p: Params, lower: datetime | None
) -> str:
    units = _units_cte(scope, p)
    value = _measure(p, spec.measure)
    column = Column(spec.event_name, spec.measure, window_s=spec.window_s)
    join = _event_join(p, [spec.event_name], 0.0, lower)
    cond = column.condition(p)
    until = ""
    if scope.until is not None:
        until = f" AND ev.ts < {p.add(scope.until, 'timestamptz')}"
    return f"""WITH {units},
xs AS MATERIALIZED (
    SELECT u.variant_key, u.unit_id, {value} AS x
    FROM units u JOIN events ev ON {join}
    WHERE {cond}{until} AND {value} IS NOT NULL)"""


def quantile_values_query(
    scope: UnitScope, spec: MetricSpec, lower: datetime | None = None
) -> tuple[str, list[object]]:
    """Per variant: ``n_events``, ``value`` (the order statistic ``ceil(n p)``), ``n_units``
    and the clustered sums of :class:`stats.QuantileStats`."""
    p = Params()
    events = _quantile_events_cte(scope, spec, p, lower)
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
    scope: UnitScope,
    spec: MetricSpec,
    ranks: dict[str, tuple[int, int, int]],
    lower: datetime | None = None,
) -> tuple[str, list[object]]:
    """Per variant, the values at 1-based ranks ``(lower, upper)`` of ``ranks[variant]``
    (``(lower, upper, n_events)``); columns ``variant_key, lower_value, upper_value``.

    ``percentile_disc(f)`` returns rank ``ceil(f n)``; ``f = (rank - 0.5) / n`` hits the
    rank exactly whatever the rounding of ``f n``."""
    p = Params()
    events = _quantile_events_cte(scope, spec, p, lower)
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
