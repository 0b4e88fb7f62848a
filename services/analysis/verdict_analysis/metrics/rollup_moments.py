"""Per-variant moments of an additive rollup: its part of an analysis, kept by each refresh.

Every non-quantile statistic is a sum over units of a per-unit column, of a column's
square or of a product of two columns (:func:`sql.variant_terms`). Over a rollup's rows
these sums, the *moments* (per variant: units, ``sum c_k``, ``sum (c_k > 0)`` and
``sum c_k c_l`` for ``k <= l``), are kept over every rolled unit (conflicted or not): each
refresh adds the change of the rows it writes (new rows' moments; for a folded row, its
new moments minus its old ones), so a fold costs what it touches, not the units. An
analysis then reads them and corrects them for the *touched* units only, those with
events received from the watermark on and those later seen in another variant: their
rolled-up contribution is subtracted, and their current one (rolled-up plus raw,
:func:`corrections_query`) added unless excluded. Sums add, so the result equals the
per-unit query's; its cost grows with the raw events and the conflicts, not the units.

Applies when the rollup is complete (every exposed unit has a row), the scope is the
whole experiment (no segment, no ``until``), no metric is percentile-capped (capping
thresholds need every unit) and units are not grouped into analysis units (the moments'
squares and products are of request units' sums, not of their analysis units' sums):
:func:`applies`. Otherwise the per-unit query runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from verdict_analysis import stats

from . import sql
from .spec import MetricSpec

__all__ = [
    "Moments",
    "applies",
    "combine",
    "corrections_query",
    "delta_exprs",
    "metric_rows",
    "moment_exprs",
    "moments_length",
    "read_moments",
    "rebuild_moments",
    "write_moments",
]

Moments = tuple[int, list[float]]
"""Units and the moment vector (:func:`moment_exprs`' layout) of one variant."""


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(k) for b in range(a, k)]


def moment_exprs(s: str, k: int) -> str:
    """SQL of the moment vector over per-unit sums array ``s`` (1-based, ``k`` columns):
    ``sum c_j`` (``j < k``), then ``sum (c_j > 0)``, then ``sum c_a c_b`` by :func:`_pairs`."""
    exprs = [f"sum({s}[{j + 1}])" for j in range(k)]
    exprs += [f"count(*) FILTER (WHERE {s}[{j + 1}] > 0)::float8" for j in range(k)]
    exprs += [f"sum({s}[{a + 1}] * {s}[{b + 1}])" for a, b in _pairs(k)]
    return f"ARRAY[{', '.join(exprs)}]::float8[]"


def delta_exprs(s: str, o: str, k: int) -> str:
    """The moment vector of arrays ``s`` minus that of arrays ``o`` (see :func:`moment_exprs`)."""
    exprs = [f"sum({s}[{j + 1}] - {o}[{j + 1}])" for j in range(k)]
    exprs += [f"sum(({s}[{j + 1}] > 0)::int - ({o}[{j + 1}] > 0)::int)::float8" for j in range(k)]
    exprs += [
        f"sum({s}[{a + 1}] * {s}[{b + 1}] - {o}[{a + 1}] * {o}[{b + 1}])" for a, b in _pairs(k)
    ]
    return f"ARRAY[{', '.join(exprs)}]::float8[]"


def moments_length(k: int) -> int:
    """The length of a moment vector over ``k`` columns."""
    return 2 * k + k * (k + 1) // 2


def applies(scope: sql.UnitScope, metrics: Sequence[MetricSpec], rollup: sql.Rollup) -> bool:
    """Whether the moments give this analysis's statistics (see the module's docstring)."""
    return (
        rollup.complete
        and scope.segment is None
        and scope.until is None
        and not scope.grouped
        and not sql.counts_units_without_events(metrics)
    )


async def rebuild_moments(
    conn: asyncpg.Connection, experiment_key: str, signature: str, n_columns: int
) -> None:
    """Recomputes a rollup's moments from its rows (inside the refresh's transaction)."""
    await conn.execute(
        "DELETE FROM analysis_rollup_moments WHERE experiment_key = $1::text"
        " AND signature = $2::text",
        experiment_key,
        signature,
    )
    await conn.execute(
        f"""INSERT INTO analysis_rollup_moments (experiment_key, signature, variant_key, units,
    moments)
SELECT $1::text, $2::text, x.variant_key, count(*), {moment_exprs("r.sums", n_columns)}
FROM analysis_rollups r
JOIN exposures x ON x.experiment_key = r.experiment_key AND x.unit_id = r.unit_id
WHERE r.experiment_key = $1::text AND r.signature = $2::text
GROUP BY x.variant_key""",
        experiment_key,
        signature,
        timeout=None,
    )


async def write_moments(
    conn: asyncpg.Connection,
    experiment_key: str,
    signature: str,
    by_variant: Mapping[str, Moments],
) -> None:
    """Stores a rollup's moments (inside the refresh's transaction)."""
    await conn.executemany(
        """INSERT INTO analysis_rollup_moments (experiment_key, signature, variant_key, units,
    moments)
VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::float8[])
ON CONFLICT (experiment_key, signature, variant_key)
DO UPDATE SET units = EXCLUDED.units, moments = EXCLUDED.moments""",
        [(experiment_key, signature, key, units, v) for key, (units, v) in by_variant.items()],
    )


async def read_moments(
    conn: asyncpg.Connection, experiment_key: str, signature: str
) -> dict[str, Moments] | None:
    """The rollup's moments by variant, or None when they were never computed."""
    rows = await conn.fetch(
        "SELECT variant_key, units, moments FROM analysis_rollup_moments"
        " WHERE experiment_key = $1::text AND signature = $2::text",
        experiment_key,
        signature,
    )
    built = await conn.fetchval(
        "SELECT moments_built FROM analysis_rollup_state"
        " WHERE experiment_key = $1::text AND signature = $2::text",
        experiment_key,
        signature,
    )
    if not built:
        return None
    return {
        r["variant_key"]: (int(r["units"]), [0.0 if x is None else x for x in r["moments"]])
        for r in rows
    }


def corrections_query(
    scope: sql.UnitScope,
    columns: Sequence[sql.Column],
    lookback_s: float,
    rollup: sql.Rollup,
) -> tuple[str, list[object]]:
    """Per variant, what the touched units change: their current moments (rolled-up plus
    raw sums; none when excluded) minus their rolled-up ones, in one pass over them.
    Columns ``variant_key, units, moments``."""
    p = sql.Params()
    exp = p.add(scope.experiment_key, "text")
    variants = p.add(list(scope.variant_keys), "text[]")
    sig = p.add(rollup.signature, "text")
    fresh = rollup.raw_events(p)
    names = p.add(sorted({c.event_name for c in columns}), "text[]")
    back = p.add(lookback_s, "float8")
    index = {c: f"c{k}" for k, c in enumerate(columns)}
    aggs = ", ".join(f"{c.aggregate(p)} AS {index[c]}" for c in columns)
    current = ", ".join(
        f"coalesce(r.sums[{k + 1}], 0::float8) + t.{index[c]}" for k, c in enumerate(columns)
    )
    k = len(columns)
    zeros = ", ".join(["0::float8"] * k)
    text = f"""WITH raw AS (
    SELECT u.unit_id, u.variant_key, {aggs}
    FROM exposures u JOIN events ev ON ev.unit_id = u.unit_id AND ev.name = ANY({names})
     AND ev.ts >= u.exposed_at - make_interval(secs => {back}) AND {fresh}
    WHERE u.experiment_key = {exp} AND u.variant_key = ANY({variants})
    GROUP BY u.unit_id, u.variant_key),
conflicted AS (
    SELECT DISTINCT c.unit_id FROM exposure_conflicts c WHERE c.experiment_key = {exp}),
touched AS (
    SELECT t.*, false AS excluded FROM raw t
    WHERE t.unit_id NOT IN (SELECT unit_id FROM conflicted)
    UNION ALL
    SELECT x.unit_id, x.variant_key, {", ".join(f"0::float8 AS {index[c]}" for c in columns)},
           true AS excluded
    FROM exposures x JOIN conflicted c ON c.unit_id = x.unit_id
    WHERE x.experiment_key = {exp} AND x.variant_key = ANY({variants})),
per_unit AS MATERIALIZED (  -- inlined, each reference of s and o rebuilds the array
    SELECT t.variant_key, (r.unit_id IS NOT NULL)::int AS rolled, (NOT t.excluded)::int AS counted,
           coalesce(r.sums, ARRAY[{zeros}]) AS o,
           CASE WHEN t.excluded THEN ARRAY[{zeros}] ELSE ARRAY[{current}] END AS s
    FROM touched t LEFT JOIN analysis_rollups r ON r.experiment_key = {exp}
     AND r.signature = {sig} AND r.unit_id = t.unit_id)
SELECT variant_key, sum(counted - rolled) AS units, {delta_exprs("s", "o", k)} AS moments
FROM per_unit GROUP BY variant_key"""
    return text, p.values


def _value(term: sql.Term, roles: Mapping[str, int], indicator: bool, m: Moments) -> float | int:
    units, v = m
    k = _columns_of(len(v))
    if term[0] == "n":
        return units
    if term[0] == "sum":
        j = roles[term[1]]
        return round(v[k + j]) if indicator else v[j]  # a count, like the SQL's
    assert not indicator, "a PROPORTION has no product terms"
    a, b = sorted((roles[term[1]], roles[term[2]]))
    return v[2 * k + _pairs(k).index((a, b))]


def _columns_of(length: int) -> int:
    """The column count ``k`` of a moment vector of ``length = 2k + k(k+1)/2``."""
    k = 0
    while 2 * k + k * (k + 1) // 2 < length:
        k += 1
    return k


def metric_rows(
    metrics: Sequence[MetricSpec],
    cuped: bool,
    columns: Sequence[sql.Column],
    by_variant: Mapping[str, Moments],
) -> dict[str, dict[str, object]]:
    """Per variant, the row :func:`sql.sufficient_stats_query` would return (``units`` and
    ``m{i}_{field}``), from the variant's moments."""
    index = {c: j for j, c in enumerate(columns)}
    rows: dict[str, dict[str, object]] = {}
    for key, m in by_variant.items():
        row: dict[str, object] = {"variant_key": key, "units": m[0]}
        for i, spec in enumerate(metrics):
            if spec.type is stats.MetricType.QUANTILE:
                continue
            roles = {role: index[c] for role, c in sql.metric_roles(spec, cuped).items()}
            indicator = spec.type is stats.MetricType.PROPORTION
            _, fields = sql.stats_fields(spec, cuped)
            terms = sql.variant_terms(spec, cuped)
            for name, term in zip(fields, terms, strict=True):
                row[f"m{i}_{name}"] = _value(term, roles, indicator, m)
        rows[key] = row
    return rows


def combine(
    base: Mapping[str, Moments], corrections: Sequence[Mapping[str, object]], length: int
) -> dict[str, Moments]:
    """``base`` plus each correction row (:func:`corrections_query`)."""
    out = {key: (units, list(v)) for key, (units, v) in base.items()}
    for r in corrections:
        key = str(r["variant_key"])
        units, v = out.get(key, (0, [0.0] * length))
        moments = r["moments"]
        assert isinstance(moments, list)
        add = [0.0 if x is None else float(x) for x in moments]
        units += int(r["units"])  # type: ignore[call-overload]
        out[key] = (units, [a + b for a, b in zip(v, add, strict=True)])
    return out
