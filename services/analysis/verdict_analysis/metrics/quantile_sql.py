"""Clustered quantile statistics without sorting the events: histogram, then a few lookups.

Per arm, over the qualifying event values ``vals`` (the quantile rollup's values plus the
raw events received after its watermark, or all raw events without a rollup):

1. :func:`quantile_stats_query`, one statement over ``vals`` (materialised once): a
   histogram by :func:`value_bucket` (order-preserving, so cumulative counts give each
   bucket's ranks) locates rank ``k = ceil(N p)``; only that bucket is sorted for ``value``;
   one GROUP BY unit gives ``C_u`` and ``S_u`` and the clustered sums. The histogram (a few
   thousand bucket counts) is returned too.
2. :func:`values_at_ranks_query`: the caller finds the buckets of the ranks ``(L, U)`` in
   that histogram; the statement reads only those buckets (an index range of the rollup).

The ``k``-th value is exact whatever the buckets' widths: buckets only narrow the sort.

With a grouped scope (:attr:`UnitScope.grouped`), the values' ``unit_id`` is their analysis
unit (:mod:`.analysis_units`), so ``C_u`` and ``S_u`` cluster by analysis unit; which values
qualify is decided per request unit, as without grouping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .analysis_units import analysis_unit
from .spec import MetricSpec
from .sql import (
    Column,
    Params,
    UnitScope,
    _event_join,
    _exposure_filter,
    _measure,
    raw_events,
)

__all__ = [
    "BUCKET_SCHEME",
    "QuantileRollup",
    "RankLookup",
    "quantile_stats_query",
    "value_bucket",
    "values_at_ranks_query",
]

BUCKET_SCHEME = "f8bits20"
"""Identifies :func:`value_bucket`; part of a quantile rollup's signature (stored buckets)."""


def value_bucket(x: str) -> str:
    """SQL for an order-preserving integer bucket of float8 ``x`` (a column reference).

    The top 20 bits of the IEEE-754 pattern (sign, exponent, 8 mantissa bits: 256 buckets
    per octave) order positive values; values ``<= 0`` take ``-1 - bucket(abs(x))``, so
    ``x < y`` implies ``bucket(x) <= bucket(y)``. PostgreSQL orders NaN above infinity, and
    so does its bit pattern."""

    def bits(v: str) -> str:
        return f"((('x' || encode(float8send({v}), 'hex'))::bit(64)::bigint >> 44)::int)"

    # abs() in both branches: a NaN with its sign bit set still lands above infinity.
    magnitude = bits(f"abs({x})")
    return f"(CASE WHEN {x} > 0 THEN {magnitude} ELSE -1 - {magnitude} END)"


@dataclass(frozen=True)
class QuantileRollup:
    """Read a quantile metric's values of the events received before ``watermark`` from
    rollup ``rollup_id`` (:class:`sql.Rollup`'s rules)."""

    rollup_id: int
    watermark: datetime
    """A bound on the events' ``received_at`` (not their ``ts``)."""
    complete: bool = False
    """Every exposed unit of the experiment is in the rollup: raw events are those received
    from the watermark on, and no unit needs its membership checked."""
    raw_since: datetime | None = None
    """Raw events of rolled units are read from this ``ts`` on; None: all."""


@dataclass(frozen=True)
class RankLookup:
    """The ``offset``-th smallest value (1-based) of ``bucket`` in arm ``variant_key``."""

    variant_key: str
    bucket: int
    offset: int
    low: float
    """The smallest value of the bucket (in this arm)."""
    high: float
    """The largest value of the bucket (in this arm)."""


def _units_cte(scope: UnitScope, p: Params, rollup: QuantileRollup | None) -> str:
    where = _exposure_filter(scope, p, "x")
    variants = p.add(list(scope.variant_keys), "text[]")
    # Inlined, the planner hashes the units (not the events), or starts from the few raw
    # events after a complete rollup's watermark; materialised when a bound reads it too.
    rolled, member, materialized = "false", "", "NOT MATERIALIZED"
    if rollup is not None and rollup.complete:
        rolled = "true"
    elif rollup is not None:
        materialized = "MATERIALIZED"
        rolled = "m.unit_id IS NOT NULL"
        member = f"""
    LEFT JOIN analysis_quantile_units m
      ON m.rollup_id = {p.add(rollup.rollup_id, "int")} AND m.unit_id = x.unit_id"""
    grouped = f", {analysis_unit('x')} AS analysis_unit" if scope.grouped else ""
    return f"""units AS {materialized} (
    SELECT x.unit_id, x.variant_key, x.exposed_at, {rolled} AS rolled{grouped}
    FROM exposures x{member}
    WHERE {where} AND x.variant_key = ANY({variants})
      AND NOT EXISTS (
        SELECT 1 FROM exposure_conflicts c
        WHERE c.experiment_key = x.experiment_key AND c.unit_id = x.unit_id))"""


def _rolled_values(
    scope: UnitScope, p: Params, rollup: QuantileRollup, buckets: list[int] | None
) -> str:
    """The rollup's values of the scope's units (exposure never changes; conflicts and
    segments are read now; ``until`` is at or after the watermark, so every value counts)."""
    rid = p.add(rollup.rollup_id, "int")
    conds = [
        # Reading every value: a sequential scan, not a bitmap of the whole index.
        f"v.rollup_id + 0 = {rid}" if buckets is None else f"v.rollup_id = {rid}",
        f"v.variant_key = ANY({p.add(list(scope.variant_keys), 'text[]')})",
        # A hashed subplan (unit_id is NOT NULL): one hash, however many values are read.
        f"""v.unit_id NOT IN (SELECT c.unit_id FROM exposure_conflicts c
        WHERE c.experiment_key = {p.add(scope.experiment_key, "text")})""",
    ]
    if buckets is not None:
        conds.append(f"v.bucket = ANY({p.add(buckets, 'int[]')})")
    if scope.segment is not None:
        exp = p.add(scope.experiment_key, "text")
        dim = p.add(scope.segment.dimension, "text")
        conds.append(f"""EXISTS (SELECT 1 FROM exposures sx
        WHERE sx.experiment_key = {exp} AND sx.unit_id = v.unit_id
          AND sx.segments ->> {dim} = {p.add(scope.segment.value, "text")})""")
    unit, grouped = "v.unit_id", ""
    if scope.grouped:  # the rollup keeps request units: their analysis unit, by primary key
        unit = f"{analysis_unit('gx')} AS unit_id"
        grouped = f"""
    JOIN exposures gx ON gx.experiment_key = {p.add(scope.experiment_key, "text")}
     AND gx.unit_id = v.unit_id"""
    return f"""SELECT v.variant_key, {unit}, v.bucket, v.value AS x
    FROM analysis_quantile_values v{grouped}
    WHERE {" AND ".join(conds)}"""


def _values_ctes(
    scope: UnitScope,
    spec: MetricSpec,
    p: Params,
    lower: datetime | None,
    rollup: QuantileRollup | None,
    lookups: Sequence[RankLookup] | None = None,
) -> str:
    """``WITH units, vals``: ``vals(variant_key, unit_id, bucket, x)`` are the qualifying
    values (only those in the buckets of ``lookups`` when given)."""
    buckets = None if lookups is None else sorted({x.bucket for x in lookups})
    units = _units_cte(scope, p, rollup)
    value = _measure(p, spec.measure)
    column = Column(spec.event_name, spec.measure, window_s=spec.window_s)
    join = _event_join(p, [spec.event_name], 0.0, lower)
    cond = column.condition(p)
    if scope.until is not None:
        cond += f" AND ev.ts < {p.add(scope.until, 'timestamptz')}"
    if rollup is not None:
        # Rolled units read the events received from the watermark on; a unit missing
        # from the rollup (exposed after its last refresh) reads all of its events.
        fresh = raw_events(p, rollup.watermark, rollup.raw_since)
        if rollup.complete:
            cond += f" AND {fresh}"
        else:
            cond += f" AND (NOT u.rolled OR ({fresh}))"
            if rollup.raw_since is not None:
                # Evaluated once at run time, this bound prunes every partition before
                # ``raw_since`` unless a unit missing from the rollup needs it.
                since = p.add(rollup.raw_since, "timestamptz")
                cond += f""" AND ev.ts >= (
              SELECT least(min(exposed_at), {since}) FROM units WHERE NOT rolled)"""
    keep = "r.x IS NOT NULL"
    if buckets is not None:
        # The buckets' value range first: a comparison is cheaper than a bucket.
        assert lookups is not None
        lo = p.add(min(x.low for x in lookups), "float8")
        hi = p.add(max(x.high for x in lookups), "float8")
        keep += f" AND r.x >= {lo} AND r.x <= {hi}"
        keep += f" AND {value_bucket('r.x')} = ANY({p.add(buckets, 'int[]')})"
    unit = "u.analysis_unit AS unit_id" if scope.grouped else "u.unit_id"
    raw = f"""SELECT r.variant_key, r.unit_id, {value_bucket("r.x")} AS bucket, r.x
    FROM (SELECT u.variant_key, {unit}, {value} AS x
          FROM units u JOIN events ev ON {join}
          WHERE {cond}) r
    WHERE {keep}"""
    parts = [raw]
    if rollup is not None:
        parts.insert(0, _rolled_values(scope, p, rollup, buckets))
    union = "\n    UNION ALL\n    ".join(parts)
    return f"""WITH {units},
vals AS MATERIALIZED (
    {union})"""


def quantile_stats_query(
    scope: UnitScope,
    spec: MetricSpec,
    lower: datetime | None = None,
    rollup: QuantileRollup | None = None,
) -> tuple[str, list[object]]:
    """Per variant with events: ``n_events``, ``value`` (rank ``max(1, ceil(n p))``),
    ``n_units``, the clustered sums of :class:`stats.QuantileStats`, and the histogram as
    ``buckets`` (ascending) with ``cumulative`` counts and each bucket's ``lows``/``highs``.

    ``lower`` bounds the raw events' ``ts`` from below (it must not cut a counted event)."""
    p = Params()
    ctes = _values_ctes(scope, spec, p, lower, rollup)
    level = p.add(spec.quantile, "float8")
    sql = f"""{ctes},
hist AS (
    SELECT variant_key, bucket, count(*) AS n, min(x) AS lo, max(x) AS hi
    FROM vals GROUP BY variant_key, bucket),
cum AS (
    SELECT h.*, sum(h.n) OVER (PARTITION BY h.variant_key ORDER BY h.bucket) AS c FROM hist h),
tot AS (
    SELECT variant_key, sum(n)::bigint AS n_events,
           greatest(1, ceil(sum(n)::float8 * {level}))::bigint AS k
    FROM hist GROUP BY variant_key),
q AS (
    SELECT t.variant_key, t.n_events,
           CASE WHEN c.lo = c.hi THEN c.lo ELSE (
               SELECT v.x FROM vals v WHERE v.variant_key = t.variant_key AND v.bucket = c.bucket
               ORDER BY v.x OFFSET t.k - (c.c - c.n) - 1 LIMIT 1) END AS value
    FROM tot t JOIN cum c ON c.variant_key = t.variant_key AND c.c >= t.k AND c.c - c.n < t.k),
pu AS (
    SELECT vals.variant_key, count(*)::float8 AS c,
           count(*) FILTER (WHERE vals.x <= q.value)::float8 AS s
    FROM vals JOIN q ON q.variant_key = vals.variant_key
    GROUP BY vals.variant_key, vals.unit_id),
sums AS (
    SELECT variant_key, count(*) AS n_units, sum(c * c) AS sum_events_sq, sum(s) AS sum_below,
           sum(s * s) AS sum_below_sq, sum(c * s) AS sum_events_below
    FROM pu GROUP BY variant_key),
hists AS (
    SELECT variant_key, array_agg(bucket ORDER BY bucket) AS buckets,
           array_agg(c::bigint ORDER BY bucket) AS cumulative,
           array_agg(lo ORDER BY bucket) AS lows, array_agg(hi ORDER BY bucket) AS highs
    FROM cum GROUP BY variant_key)
SELECT q.variant_key, q.n_events, q.value, s.n_units, s.sum_events_sq, s.sum_below,
       s.sum_below_sq, s.sum_events_below, h.buckets, h.cumulative, h.lows, h.highs
FROM q JOIN sums s ON s.variant_key = q.variant_key JOIN hists h ON h.variant_key = q.variant_key"""
    return sql, p.values


def values_at_ranks_query(
    scope: UnitScope,
    spec: MetricSpec,
    lookups: Sequence[RankLookup],
    lower: datetime | None = None,
    rollup: QuantileRollup | None = None,
) -> tuple[str, list[object]]:
    """The value of each lookup, reading only the lookups' buckets: columns ``i`` (the
    lookup's index) and ``value``."""
    p = Params()
    ctes = _values_ctes(scope, spec, p, lower, rollup, lookups)
    keys = p.add([x.variant_key for x in lookups], "text[]")
    bs = p.add([x.bucket for x in lookups], "int[]")
    offsets = p.add([x.offset for x in lookups], "bigint[]")
    sql = f"""{ctes}
SELECT r.i, (SELECT v.x FROM vals v WHERE v.variant_key = r.variant_key AND v.bucket = r.bucket
             ORDER BY v.x OFFSET r.off - 1 LIMIT 1) AS value
FROM unnest({keys}, {bs}, {offsets}) WITH ORDINALITY AS r(variant_key, bucket, off, i)"""
    return sql, p.values
