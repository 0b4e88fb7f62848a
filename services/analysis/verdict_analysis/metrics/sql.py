"""SQL text for the analysis queries, built from metric specs with every value a parameter.

Only identifiers chosen here (column aliases) are spliced into the text; event names,
measures, windows and thresholds travel as ``$n`` parameters. The shape, for all
non-quantile metrics of an experiment at once (one scan of the events)::

    units     exposed, analysed units (not in exposure_conflicts; segment; until)
    per_unit  units JOIN events, GROUP BY unit: one FILTERed count / sum per distinct
              :class:`Column` (a metric's value after, or for CUPED before, exposure); with
              :attr:`UnitScope.grouped`, GROUP BY analysis unit (the hashed value), each
              event still cut by its own unit's exposure (:mod:`.analysis_units`)
    caps      pooled percentile thresholds (only when a metric is percentile-capped)
    SELECT    per variant: COUNT, SUM, SUM of squares and cross products

The event scan has a constant lower bound on ``ts`` (the earliest exposure minus the
CUPED lookback, found by :func:`units_count_query`), so PostgreSQL prunes the older day
partitions. With rollups (:mod:`.rollup`), ``per_unit`` adds each unit's rolled-up sums
to its raw events received after the watermark instead. Quantile metrics need event-level order
statistics: see :mod:`.quantile_sql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from verdict_analysis import stats

from .analysis_units import analysis_unit
from .spec import MetricSpec, Segment

__all__ = [
    "Column",
    "Params",
    "Rollup",
    "Term",
    "UnitScope",
    "columns_of",
    "counts_units_without_events",
    "excluded_units_query",
    "metric_roles",
    "raw_events",
    "stats_fields",
    "sufficient_stats_query",
    "units_count_query",
    "variant_terms",
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
    grouped: bool = False
    """Some exposure hashed another attribute than the unit id: units are summed into
    analysis units (:mod:`.analysis_units`) before the per-variant aggregates. False: the
    per-unit queries, unchanged."""


def _unit_key(scope: UnitScope, alias: str) -> str:
    """What one unit of the per-unit aggregates is: the analysis unit, or the unit."""
    return f"{alias}.analysis_unit" if scope.grouped else f"{alias}.unit_id"


def _exposure_filter(scope: UnitScope, p: Params, alias: str) -> str:
    conds = [f"{alias}.experiment_key = {p.add(scope.experiment_key, 'text')}"]
    if scope.segment is not None:
        dim = p.add(scope.segment.dimension, "text")
        conds.append(f"{alias}.segments ->> {dim} = {p.add(scope.segment.value, 'text')}")
    if scope.until is not None:
        conds.append(f"{alias}.exposed_at < {p.add(scope.until, 'timestamptz')}")
    return " AND ".join(conds)


def _units_cte(scope: UnitScope, p: Params, rollup: Rollup | None = None) -> str:
    # NOT MATERIALIZED: inlined, the planner sees the exposures' statistics, hashes the
    # units (not the events) and can run the join and the per-unit aggregate in parallel.
    # With a rollup it is read twice (raw events, then every unit): computed once.
    where = _exposure_filter(scope, p, "x")
    variants = p.add(list(scope.variant_keys), "text[]")
    sums, rolled, materialized = "", "", "NOT MATERIALIZED"
    if rollup is not None:
        sums, materialized = ", r.sums", "MATERIALIZED"
        rolled = f"""
    LEFT JOIN analysis_rollups r ON r.experiment_key = x.experiment_key
     AND r.signature = {p.add(rollup.signature, "text")} AND r.unit_id = x.unit_id"""
    grouped = f", {analysis_unit('x')} AS analysis_unit" if scope.grouped else ""
    return f"""units AS {materialized} (
    SELECT x.unit_id, x.variant_key, x.exposed_at{sums}{grouped}
    FROM exposures x{rolled}
    WHERE {where} AND x.variant_key = ANY({variants})
      AND NOT EXISTS (
        SELECT 1 FROM exposure_conflicts c
        WHERE c.experiment_key = x.experiment_key AND c.unit_id = x.unit_id))"""


def units_count_query(scope: UnitScope, rollup: Rollup | None = None) -> tuple[str, list[object]]:
    """Analysed units per variant: columns ``variant_key, units, first_exposed_at`` and
    ``first_unrolled_at`` (the earliest exposure of a unit missing from ``rollup``; NULL
    without looking when the rollup is complete, which spares a join of every unit).
    ``units`` counts analysis units when the scope is grouped."""
    p = Params()
    if rollup is not None and rollup.complete:
        rollup = None
    units = _units_cte(scope, p, rollup)
    unrolled = "NULL::timestamptz"
    if rollup is not None:
        unrolled = "min(exposed_at) FILTER (WHERE sums IS NULL)"
    counted = "count(DISTINCT analysis_unit)" if scope.grouped else "count(*)"
    sql = f"""WITH {units}
SELECT variant_key, {counted} AS units, min(exposed_at) AS first_exposed_at,
       {unrolled} AS first_unrolled_at
FROM units GROUP BY variant_key"""
    return sql, p.values


def excluded_units_query(scope: UnitScope) -> tuple[str, list[object]]:
    """Units of the scope (any variant) later seen in another variant: one count.

    Grouped, conflicts exclude request units from their analysis unit, which stays while it
    has others: the count is of the analysis units left with none, so that it adds to the
    analysed units' counts (a share of excluded units compares like with like)."""
    p = Params()
    where = _exposure_filter(scope, p, "x")
    if scope.grouped:
        exp = p.add(scope.experiment_key, "text")
        sql = f"""SELECT count(*) FROM (
    SELECT 1 FROM exposures x
    LEFT JOIN (SELECT DISTINCT c.unit_id FROM exposure_conflicts c
               WHERE c.experiment_key = {exp}) c ON c.unit_id = x.unit_id
    WHERE {where}
    GROUP BY {analysis_unit("x")}
    HAVING bool_and(c.unit_id IS NOT NULL)) AS excluded"""
        return sql, p.values
    sql = f"""SELECT count(*) FROM exposures x
WHERE {where} AND EXISTS (
    SELECT 1 FROM exposure_conflicts c
    WHERE c.experiment_key = x.experiment_key AND c.unit_id = x.unit_id)"""
    return sql, p.values


def _measure(p: Params, measure: str) -> str:
    return f"ev.measure_values[array_position(ev.measure_names, {p.add(measure, 'text')})]"


@dataclass(frozen=True)
class Column:
    """One additive per-unit sum over a unit's events: what metrics read per unit.

    ``pre``: events in ``[exposed_at - lookback, exposed_at)`` (the CUPED covariate);
    otherwise events from ``exposed_at`` on (and before ``exposed_at + window_s``).
    Sums over disjoint sets of events add, which is what rollups rely on."""

    event_name: str
    measure: str
    """Measure summed; empty: the events are counted."""
    pre: bool = False
    window_s: float | None = None

    def condition(self, p: Params) -> str:
        """Whether event ``ev`` of unit ``u`` counts (the lookback is the join's)."""
        cond = f"ev.name = {p.add(self.event_name, 'text')}"
        if self.pre:
            cond += " AND ev.ts < u.exposed_at"
        else:
            cond += " AND ev.ts >= u.exposed_at"
            if self.window_s is not None:
                secs = p.add(self.window_s, "float8")
                cond += f" AND ev.ts < u.exposed_at + make_interval(secs => {secs})"
        return cond

    def aggregate(self, p: Params) -> str:
        """The per-unit aggregate over ``ev`` joined to ``u`` (0 without events)."""
        cond = self.condition(p)
        if not self.measure:
            return f"count(*) FILTER (WHERE {cond})::float8"
        return f"coalesce(sum({_measure(p, self.measure)}) FILTER (WHERE {cond}), 0::float8)"


def _uses_cuped(spec: MetricSpec, cuped: bool) -> bool:
    return cuped and spec.type in (stats.MetricType.MEAN, stats.MetricType.RATIO)


def _metric_columns(spec: MetricSpec, cuped: bool) -> dict[str, Column]:
    """A non-quantile metric's per-unit inputs by role: ``y``, ``x``, ``d``, ``xd``."""
    window = spec.window_s
    if spec.type is stats.MetricType.PROPORTION:
        return {"y": Column(spec.event_name, "", window_s=window)}
    cols = {"y": Column(spec.event_name, spec.measure, window_s=window)}
    if _uses_cuped(spec, cuped):
        cols["x"] = Column(spec.event_name, spec.measure, pre=True)
    if spec.type is stats.MetricType.RATIO:
        den, measure = spec.denominator_event_name, spec.denominator_measure
        cols["d"] = Column(den, measure, window_s=window)
        if _uses_cuped(spec, cuped):
            cols["xd"] = Column(den, measure, pre=True)
    return cols


def columns_of(metrics: Sequence[MetricSpec], cuped: bool) -> list[Column]:
    """The distinct per-unit columns of the non-quantile metrics, in a stable order."""
    found: dict[Column, None] = {}
    for spec in metrics:
        if spec.type is not stats.MetricType.QUANTILE:
            found.update(dict.fromkeys(_metric_columns(spec, cuped).values()))
    return list(found)


def stats_fields(spec: MetricSpec, cuped: bool) -> tuple[type[stats.MetricStats], list[str]]:
    """The statistics class of a metric and its fields in the query's column order."""
    if spec.type is stats.MetricType.PROPORTION:
        return stats.ProportionStats, ["n_units", "successes"]
    if spec.type is stats.MetricType.MEAN:
        if _uses_cuped(spec, cuped):
            return stats.CupedStats, [
                "n_units", "sum_y", "sum_y_sq", "sum_x", "sum_x_sq", "sum_xy",
            ]  # fmt: skip
        return stats.SampleStats, ["n_units", "sum", "sum_sq"]
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


@dataclass(frozen=True)
class Rollup:
    """Read per-unit sums from a rollup: ``columns[k]`` summed over a unit's events
    received before ``watermark`` is ``analysis_rollups.sums[k + 1]``; events received
    from the watermark on are read raw."""

    signature: str
    watermark: datetime
    """A bound on the events' ``received_at`` (not their ``ts``)."""
    complete: bool = False
    """Every exposed unit of the experiment has a row: none reads all its events raw, and
    the per-variant moments (:mod:`.rollup_moments`) apply."""
    raw_since: datetime | None = None
    """Raw events of rolled units are read from this ``ts`` on (a constant bound that
    prunes the older partitions; later-sent events wait for the next fold); None: all."""

    def raw_events(self, p: Params) -> str:
        """Whether event ``ev`` of a rolled unit is read raw."""
        return raw_events(p, self.watermark, self.raw_since)


def raw_events(p: Params, watermark: datetime, raw_since: datetime | None) -> str:
    """Whether event ``ev`` of a unit rolled up to ``watermark`` is read raw: received from
    the watermark on (and with ``ts`` from ``raw_since`` on, when given)."""
    cond = f"ev.received_at >= {p.add(watermark, 'timestamptz')}"
    if raw_since is not None:
        cond += f" AND ev.ts >= {p.add(raw_since, 'timestamptz')}"
    return cond


def _event_join(p: Params, names: list[str], lookback: float, lower: datetime | None) -> str:
    """The join of ``events ev`` to ``units u``: event names, lookback, pruning bound."""
    cond = f"ev.unit_id = u.unit_id AND ev.name = ANY({p.add(sorted(set(names)), 'text[]')})"
    cond += f" AND ev.ts >= u.exposed_at - make_interval(secs => {p.add(lookback, 'float8')})"
    if lower is not None:
        # A constant bound: PostgreSQL prunes the day partitions before it.
        cond += f" AND ev.ts >= {p.add(lower, 'timestamptz')}"
    return cond


def sufficient_stats_query(
    scope: UnitScope,
    metrics: Sequence[MetricSpec],
    cuped_lookback_s: float | None,
    *,
    lower: datetime | None = None,
    rollup: Rollup | None = None,
) -> tuple[str, list[object]]:
    """One query returning, per variant, the sufficient statistics of every metric.

    Columns: ``variant_key``, ``units``, then ``m{i}_{field}`` for metric ``i`` and each
    field of :func:`stats_fields`, and ``m{i}_capped`` (units whose value was capped) for a
    capped metric. Quantile metrics are skipped (their own queries).
    ``lower`` bounds the events' ``ts`` from below (it must not cut any counted event);
    with ``rollup``, per-unit sums come from the rollup plus the events after it. With a
    grouped scope, a per-unit row is an analysis unit: the rollup's rows (per request unit)
    and raw events are summed per analysis unit first.
    """
    p = Params()
    units = _units_cte(scope, p, rollup)
    cuped = cuped_lookback_s is not None
    columns = columns_of(metrics, cuped)
    if not columns:
        raise ValueError("no metric computed by the sufficient statistics query")
    index = {c: f"c{k}" for k, c in enumerate(columns)}
    caps: list[str] = []
    outs: list[str] = []
    for i, spec in enumerate(metrics):
        if spec.type is stats.MetricType.QUANTILE:
            continue
        spec.validate()
        use_cuped = _uses_cuped(spec, cuped)
        cols = _metric_columns(spec, cuped)
        ref = {role: f"pu.{index[c]}" for role, c in cols.items()}
        if spec.type is stats.MetricType.PROPORTION:
            ref["y"] = f"(pu.{index[cols['y']]} > 0)::int"
        capped = ""
        if spec.type is stats.MetricType.MEAN and spec.capping is not None:
            for role, c in cols.items():
                lo, hi = _cap_bounds(p, i, index[c], spec.capping, caps)
                ref[role] = f"least(greatest(pu.{index[c]}, {lo}), {hi})"
                if role == "y":  # the diagnostics' capped units: the metric's own value
                    value = f"pu.{index[c]}"
                    capped = (
                        f"count(*) FILTER (WHERE {value} > {hi} OR {value} < {lo}) AS m{i}_capped"
                    )
        outs.extend(_variant_sums(spec, i, ref, use_cuped))
        if capped:
            outs.append(capped)
    lookback = cuped_lookback_s if cuped_lookback_s is not None else 0.0
    join = _event_join(p, [c.event_name for c in columns], lookback, lower)
    if scope.until is not None:
        join += f" AND ev.ts < {p.add(scope.until, 'timestamptz')}"
    aggs = [f"{c.aggregate(p)} AS {index[c]}" for c in columns]
    if rollup is None:
        # Without capping, units without events add nothing to any sum: an INNER join
        # suffices, and the caller takes the ``n_units`` fields from the unit counts. Capping
        # needs every unit (zeros move percentiles).
        kind = "LEFT JOIN" if caps or _capped(metrics) else "JOIN"
        # Grouped, the events of every unit of an analysis unit land in its group, each cut by
        # its own unit's exposure (the join's and the columns' conditions read u.exposed_at).
        per_unit = f"""per_unit AS (
    SELECT u.variant_key, {", ".join(aggs)}
    FROM units u {kind} events ev ON {join}
    GROUP BY {_unit_key(scope, "u")}, u.variant_key)"""
    else:
        # Rolled units read the events received from the watermark on; a unit missing
        # from the rollup (exposed after its last refresh) reads all of its events.
        join += f" AND (u.sums IS NULL OR ({rollup.raw_events(p)}))"
        sums = [
            f"coalesce(u.sums[{k + 1}], 0::float8) + coalesce(raw.{index[c]}, 0::float8)"
            for k, c in enumerate(columns)
        ]
        group = ""
        if scope.grouped:  # the rollup's rows are per unit: summed per analysis unit
            sums = [f"sum({e})" for e in sums]
            group = "\n    GROUP BY u.analysis_unit, u.variant_key"
        outs_pu = [f"{e} AS {index[c]}" for e, c in zip(sums, columns, strict=True)]
        per_unit = f"""raw AS (
    SELECT u.unit_id, {", ".join(aggs)}
    FROM units u JOIN events ev ON {join}
    GROUP BY u.unit_id),
per_unit AS (
    SELECT u.variant_key, {", ".join(outs_pu)}
    FROM units u LEFT JOIN raw ON raw.unit_id = u.unit_id{group})"""
    caps_cte = ""
    caps_join = ""
    if caps:
        caps_cte = f",\ncaps AS (SELECT {', '.join(caps)} FROM per_unit pu)"
        caps_join = " CROSS JOIN caps"
    sql = f"""WITH {units},
{per_unit}{caps_cte}
SELECT pu.variant_key, count(*) AS units, {", ".join(outs)}
FROM per_unit pu{caps_join}
GROUP BY pu.variant_key"""
    return sql, p.values


def _capped(metrics: Sequence[MetricSpec]) -> bool:
    return any(m.type is stats.MetricType.MEAN and m.capping is not None for m in metrics)


def counts_units_without_events(metrics: Sequence[MetricSpec]) -> bool:
    """Whether :func:`sufficient_stats_query`'s ``n_units`` fields count every analysed unit;
    when not, they count units with events and the caller sets them from unit counts."""
    return _capped(metrics)


Term = tuple[str, ...]
"""One per-variant statistic as a sum over units: ``("n",)`` counts units, ``("sum", a)``
sums role ``a``, ``("prod", a, b)`` sums the product of roles ``a`` and ``b``."""


def variant_terms(spec: MetricSpec, cuped: bool) -> list[Term]:
    """The terms of :func:`stats_fields`' fields, in order, over the metric's roles
    (:func:`metric_roles`)."""
    if spec.type is stats.MetricType.PROPORTION:
        return [("n",), ("sum", "y")]
    if spec.type is stats.MetricType.MEAN:
        terms: list[Term] = [("n",), ("sum", "y"), ("prod", "y", "y")]
        if cuped:
            terms += [("sum", "x"), ("prod", "x", "x"), ("prod", "x", "y")]
        return terms
    terms = [("n",), ("sum", "y"), ("prod", "y", "y"), ("sum", "d"), ("prod", "d", "d")]
    terms.append(("prod", "y", "d"))
    if cuped:
        terms += [("sum", "x"), ("prod", "x", "x"), ("sum", "xd"), ("prod", "xd", "xd")]
        terms += [("prod", "x", "xd"), ("prod", "y", "x"), ("prod", "y", "xd")]
        terms += [("prod", "d", "x"), ("prod", "d", "xd")]
    return terms


def metric_roles(spec: MetricSpec, cuped: bool) -> dict[str, Column]:
    """A non-quantile metric's per-unit inputs by role (``y``, ``x``, ``d``, ``xd``); a
    PROPORTION's ``y`` is read as ``column > 0``."""
    return _metric_columns(spec, cuped)


def _variant_sums(spec: MetricSpec, i: int, ref: dict[str, str], cuped: bool) -> list[str]:
    _, fields = stats_fields(spec, cuped)
    exprs = []
    for term in variant_terms(spec, cuped):
        if term[0] == "n":
            exprs.append("count(*)")
        elif term[0] == "sum":
            exprs.append(f"sum({ref[term[1]]})")
        else:
            exprs.append(f"sum({ref[term[1]]} * {ref[term[2]]})")
    return [f"{e} AS m{i}_{name}" for e, name in zip(exprs, fields, strict=True)]
