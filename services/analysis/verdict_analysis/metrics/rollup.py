"""Incremental analysis: per-unit rollups of the metrics' additive sums up to a watermark.

Every non-quantile metric reads, per unit, a few sums over the unit's events (the
:class:`sql.Column` values). Sums over disjoint sets of events add, so a refresh folds
the events of ``[old watermark, new watermark)`` into each unit's row, and the analysis
adds the raw events from the watermark on (:func:`sql.sufficient_stats_query` with a
:class:`sql.Rollup`). The watermark is the start of the last closed UTC day (after a grace
period), so the raw part of an analysis reads only the open day's partition.

Exact because a unit's exposure (first exposure wins) never changes once stored, and every
window, lookback and segment condition is evaluated per unit and event on both sides:

* units exposed after a refresh have no row yet and read all their events raw;
* conflicts and segments filter units when reading, so they stay exact;
* ``until`` before the watermark uses the full path.

Quantile metrics keep their values instead of sums: :mod:`.quantile_rollup`.

Not covered: an event stored after a refresh with a timestamp before its watermark (a
client that sends events more than the grace period late) is missed until the rollup is
rebuilt (:func:`drop_rollups`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

import asyncpg

from . import quantile_rollup, rollup_moments, sql
from .spec import MetricSpec

__all__ = [
    "DEFAULT_GRACE_S",
    "drop_rollups",
    "lookback_of",
    "read_rollup",
    "refresh_rollups",
    "signature_of",
]

DEFAULT_GRACE_S = 3600.0
"""A day is rolled up this long after it ends, leaving late events time to arrive."""

_STALE = "7 days"
"""Rollups of other column sets of the experiment unrefreshed for this long are dropped."""


def signature_of(columns: Sequence[sql.Column], lookback_s: float) -> str:
    """Identifies a rollup's contents: its columns in order, and the CUPED lookback."""
    text = json.dumps([[asdict(c) for c in columns], lookback_s], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def lookback_of(metrics: Sequence[MetricSpec], cuped_lookback_s: float | None) -> float:
    """The lookback a rollup of these metrics reads before exposure (0 without CUPED)."""
    columns = sql.columns_of(metrics, cuped_lookback_s is not None)
    return cuped_lookback_s if any(c.pre for c in columns) and cuped_lookback_s else 0.0


async def read_rollup(
    conn: asyncpg.Connection,
    experiment_key: str,
    metrics: Sequence[MetricSpec],
    cuped_lookback_s: float | None,
) -> sql.Rollup | None:
    """The current rollup of these metrics, or None when there is none."""
    columns = sql.columns_of(metrics, cuped_lookback_s is not None)
    if not columns:
        return None
    sig = signature_of(columns, lookback_of(metrics, cuped_lookback_s))
    row = await conn.fetchrow(
        "SELECT watermark, n_units FROM analysis_rollup_state"
        " WHERE experiment_key = $1::text AND signature = $2::text",
        experiment_key,
        sig,
    )
    if row is None:
        return None
    exposed = await quantile_rollup.exposed_units(conn, experiment_key)
    return sql.Rollup(sig, row["watermark"], row["n_units"] == exposed)


async def refresh_rollups(
    conn: asyncpg.Connection,
    experiment_key: str,
    metrics: Sequence[MetricSpec],
    *,
    cuped_lookback_s: float | None = None,
    watermark: datetime | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> sql.Rollup | None:
    """Folds the events before the new watermark into the rollup, and adds newly exposed
    units; returns the rollup (None when the metrics have no rollable column). Quantile
    metrics' rollups (:mod:`.quantile_rollup`) are refreshed to the same watermark.

    The new watermark is ``watermark``, else the start of the UTC day of ``now - grace_s``;
    it never moves back. Runs in its own transaction, serialised per rollup by a
    transaction-level advisory lock (the analysis lock already serialises analyses).
    """
    if watermark is None:
        watermark = await conn.fetchval(
            "SELECT date_trunc('day', (now() - make_interval(secs => $1::float8))"
            " AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            grace_s,
        )
    assert watermark is not None
    await quantile_rollup.refresh_quantile_rollups(conn, experiment_key, metrics, watermark)
    cuped = cuped_lookback_s is not None
    columns = sql.columns_of(metrics, cuped)
    if not columns:
        return None
    lookback = lookback_of(metrics, cuped_lookback_s)
    sig = signature_of(columns, lookback)
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_nestloop = off")  # see collect_stats
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
            f"verdict.rollup:{experiment_key}:{sig}",
        )
        state = await conn.fetchrow(
            "SELECT watermark, n_units, moments_built FROM analysis_rollup_state"
            " WHERE experiment_key = $1::text AND signature = $2::text",
            experiment_key,
            sig,
        )
        old = None if state is None else state["watermark"]
        n_units = 0 if state is None else state["n_units"]
        changed = state is None or not state["moments_built"]
        if old is not None and watermark <= old:
            watermark = old
        elif old is not None:
            text, params = _advance_query(experiment_key, sig, columns, lookback, old, watermark)
            await conn.execute(text, *params, timeout=None)
            changed = True
        exposed = await quantile_rollup.exposed_units(conn, experiment_key)
        if n_units != exposed:  # some exposed unit has no row yet
            changed = True
            first = await conn.fetchval(
                """SELECT min(x.exposed_at) FROM exposures x
WHERE x.experiment_key = $1::text AND NOT EXISTS (
    SELECT 1 FROM analysis_rollups r WHERE r.experiment_key = $1::text
       AND r.signature = $2::text AND r.unit_id = x.unit_id)""",
                experiment_key,
                sig,
            )
            if first is not None:
                text, params = _new_units_query(experiment_key, sig, columns, lookback, watermark)
                await conn.execute(text, *params, first, timeout=None)
            n_units = await conn.fetchval(
                "SELECT count(*) FROM analysis_rollups"
                " WHERE experiment_key = $1::text AND signature = $2::text",
                experiment_key,
                sig,
            )
        await conn.execute(
            """INSERT INTO analysis_rollup_state
    (experiment_key, signature, columns, watermark, n_units, moments_built, refreshed_at)
VALUES ($1::text, $2::text, $3::jsonb, $4::timestamptz, $5::bigint, true, now())
ON CONFLICT (experiment_key, signature)
DO UPDATE SET watermark = EXCLUDED.watermark, n_units = EXCLUDED.n_units,
    moments_built = true, refreshed_at = now()""",
            experiment_key,
            sig,
            json.dumps({"columns": [asdict(c) for c in columns], "lookback_s": lookback}),
            watermark,
            n_units,
        )
        if changed:
            await rollup_moments.rebuild_moments(conn, experiment_key, sig, len(columns))
            # The analysis's plans depend on the rollup's size (rollup_moments): keep its
            # statistics current rather than wait for autovacuum.
            await conn.execute("ANALYZE analysis_rollups", timeout=None)
        await _drop_stale(conn, experiment_key)
    return sql.Rollup(sig, watermark, n_units == exposed)


def _sums(p: sql.Params, columns: Sequence[sql.Column]) -> str:
    return f"ARRAY[{', '.join(c.aggregate(p) for c in columns)}]"


def _join(p: sql.Params, columns: Sequence[sql.Column], lookback: float) -> str:
    names = p.add(sorted({c.event_name for c in columns}), "text[]")
    return (
        f"ev.unit_id = u.unit_id AND ev.name = ANY({names})"
        f" AND ev.ts >= u.exposed_at - make_interval(secs => {p.add(lookback, 'float8')})"
    )


def _advance_query(
    experiment_key: str,
    sig: str,
    columns: Sequence[sql.Column],
    lookback: float,
    old: datetime,
    new: datetime,
) -> tuple[str, list[object]]:
    """Adds the events of ``[old, new)`` to the rows of the units already rolled up."""
    p = sql.Params()
    exp, s = p.add(experiment_key, "text"), p.add(sig, "text")
    join = _join(p, columns, lookback)
    lo, hi = p.add(old, "timestamptz"), p.add(new, "timestamptz")
    sums = _sums(p, columns)
    text = f"""UPDATE analysis_rollups r
SET sums = ARRAY(
    SELECT a + b FROM unnest(r.sums, d.sums) WITH ORDINALITY AS t(a, b, i) ORDER BY i)
FROM (
    SELECT u.unit_id, {sums} AS sums
    FROM (SELECT x.unit_id, x.exposed_at FROM exposures x
          JOIN analysis_rollups r0 ON r0.experiment_key = x.experiment_key
           AND r0.signature = {s} AND r0.unit_id = x.unit_id
          WHERE x.experiment_key = {exp}) u
    JOIN events ev ON {join} AND ev.ts >= {lo} AND ev.ts < {hi}
    GROUP BY u.unit_id) d
WHERE r.experiment_key = {exp} AND r.signature = {s} AND r.unit_id = d.unit_id"""
    return text, p.values


def _new_units_query(
    experiment_key: str,
    sig: str,
    columns: Sequence[sql.Column],
    lookback: float,
    watermark: datetime,
) -> tuple[str, list[object]]:
    """Rows for the exposed units without one: their events before the watermark. The
    last parameter (appended by the caller) is their earliest exposure, for pruning."""
    p = sql.Params()
    exp, s = p.add(experiment_key, "text"), p.add(sig, "text")
    join = _join(p, columns, lookback)
    hi = p.add(watermark, "timestamptz")
    sums = _sums(p, columns)
    back = p.add(lookback, "float8")
    first = f"${len(p.values) + 1}::timestamptz"
    text = f"""INSERT INTO analysis_rollups (experiment_key, signature, unit_id, sums)
SELECT {exp}, {s}, u.unit_id, {sums}
FROM (SELECT x.unit_id, x.exposed_at FROM exposures x
      WHERE x.experiment_key = {exp} AND NOT EXISTS (
          SELECT 1 FROM analysis_rollups r WHERE r.experiment_key = {exp}
             AND r.signature = {s} AND r.unit_id = x.unit_id)) u
LEFT JOIN events ev ON {join} AND ev.ts < {hi}
 AND ev.ts >= {first} - make_interval(secs => {back})
GROUP BY u.unit_id"""
    return text, p.values


async def _drop_stale(conn: asyncpg.Connection, experiment_key: str) -> None:
    stale = await conn.fetch(
        f"""DELETE FROM analysis_rollup_state WHERE experiment_key = $1::text
AND refreshed_at < now() - interval '{_STALE}' RETURNING signature""",
        experiment_key,
    )
    if stale:
        await conn.execute(
            "DELETE FROM analysis_rollups WHERE experiment_key = $1::text"
            " AND signature = ANY($2::text[])",
            experiment_key,
            [r["signature"] for r in stale],
        )


async def drop_rollups(conn: asyncpg.Connection, experiment_key: str) -> None:
    """Drops every rollup of an experiment (the next refresh rebuilds from raw events)."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM analysis_rollups WHERE experiment_key = $1::text", experiment_key
        )
        await conn.execute(
            "DELETE FROM analysis_rollup_state WHERE experiment_key = $1::text", experiment_key
        )
        await conn.execute(
            "DELETE FROM analysis_quantile_state WHERE experiment_key = $1::text", experiment_key
        )
