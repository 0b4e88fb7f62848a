"""Incremental analysis: per-unit rollups of the metrics' additive sums up to a watermark.

Every non-quantile metric reads, per unit, a few sums over the unit's events (the
:class:`sql.Column` values). Sums over disjoint sets of events add, so a refresh folds
the events received in ``[old watermark, new watermark)`` into each unit's row, and the
analysis adds the raw events received from the watermark on (:func:`sql.sufficient_stats_query`
with a :class:`sql.Rollup`).

The watermark bounds the events' ``received_at`` (ingestion time), not their ``ts``: a rollup
holds exactly the events received before it, whatever their timestamps, so an event sent
late is folded by the next fold like any other. It advances every ``fold_s`` (an hour by
default: the raw part of an analysis stays about an hour of events), ``grace_s`` behind the
clock, and never past the start of a transaction still running in the database (an ingest
COPY in flight stamps its events with its start). A fold touches only the units with newly
received events, and updates the per-variant moments (:mod:`.rollup_moments`) by their
change; its cost is one scan of the experiment's event partitions filtered on
``received_at`` (:mod:`.fold_events`), plus the new events.

An analysis reads the raw events received from the watermark on in the partitions from
``watermark - LATE_S`` (:attr:`sql.Rollup.raw_since`), so that it does not scan every
partition: an event sent more than ``LATE_S`` late is counted from the next fold on (within
``fold_s``). The full path and every fold count it.

Exact because a unit's exposure (first exposure wins) never changes once stored, and every
window, lookback and segment condition is evaluated per unit and event on both sides:

* units exposed after a refresh have no row yet and read all their events raw;
* conflicts and segments filter units when reading, so they stay exact;
* ``until`` uses the full path (a rollup may hold events of any ``ts``).

Quantile metrics keep their values instead of sums: :mod:`.quantile_rollup`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

import asyncpg

from verdict_analysis import stats

from . import diagnostics, quantile_rollup, rollup_moments, sql
from .fold_events import StagedEvents
from .spec import MetricSpec

__all__ = [
    "DEFAULT_FOLD_S",
    "DEFAULT_GRACE_S",
    "LATE_S",
    "drop_rollups",
    "lookback_of",
    "next_watermark",
    "read_rollup",
    "refresh_rollups",
    "signature_of",
]

DEFAULT_FOLD_S = 3600.0
"""The watermark advances in steps of this many seconds: one fold per step."""

DEFAULT_GRACE_S = 300.0
"""The watermark stays this far behind the clock (events received are committed by then)."""

LATE_S = quantile_rollup.LATE_S
"""Analyses read raw events with ``ts`` from this long before the watermark (later-sent
events wait for the next fold)."""

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


def raw_since(watermark: datetime) -> datetime:
    """The earliest ``ts`` an analysis reads raw after ``watermark`` (see :data:`LATE_S`)."""
    return watermark - timedelta(seconds=LATE_S)


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
    mark = row["watermark"]
    return sql.Rollup(sig, mark, row["n_units"] == exposed, raw_since(mark))


async def next_watermark(
    conn: asyncpg.Connection,
    fold_s: float = DEFAULT_FOLD_S,
    grace_s: float = DEFAULT_GRACE_S,
) -> datetime:
    """The watermark a refresh now folds to: ``now - grace_s``, held back to the start of
    the oldest other transaction open in this database (its events, when it commits, are
    stamped with that start), rounded down to a multiple of ``fold_s``."""
    mark = await conn.fetchval(
        """SELECT to_timestamp(floor(extract(epoch FROM least(
    now() - make_interval(secs => $1::float8),
    (SELECT min(a.xact_start) FROM pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()))) / $2::float8)
    * $2::float8)""",
        grace_s,
        fold_s,
    )
    assert isinstance(mark, datetime)
    return mark


async def refresh_rollups(
    conn: asyncpg.Connection,
    experiment_key: str,
    metrics: Sequence[MetricSpec],
    *,
    cuped_lookback_s: float | None = None,
    watermark: datetime | None = None,
    fold_s: float = DEFAULT_FOLD_S,
    grace_s: float = DEFAULT_GRACE_S,
) -> sql.Rollup | None:
    """Folds the events received before the new watermark into the rollup, and adds newly
    exposed units; returns the rollup (None when the metrics have no rollable column).
    Quantile metrics' rollups (:mod:`.quantile_rollup`) and the counts of events left out
    (:mod:`.diagnostics`) are brought to the same watermark.

    The new watermark is ``watermark``, else :func:`next_watermark`; it never moves back
    (a refresh before the next step of ``fold_s`` folds nothing). Runs in its own
    transaction, serialised per rollup by a transaction-level advisory lock (the analysis
    lock already serialises analyses).
    """
    if watermark is None:
        watermark = await next_watermark(conn, fold_s, grace_s)
    cuped = cuped_lookback_s is not None
    columns = sql.columns_of(metrics, cuped)
    lookback = lookback_of(metrics, cuped_lookback_s)
    names = [c.event_name for c in columns]
    names += [m.event_name for m in metrics if m.type is stats.MetricType.QUANTILE]
    staged = StagedEvents(conn, experiment_key, names, lookback)
    try:
        await quantile_rollup.refresh_quantile_rollups(
            conn, experiment_key, metrics, watermark, staged
        )
        rolled = None
        if columns:
            rolled = await _refresh_additive(
                conn, experiment_key, columns, lookback, watermark, staged
            )
        # The events left out, counted over the same staged events (no scan of its own).
        await diagnostics.fold_event_counts(conn, experiment_key, names, watermark, staged)
        return rolled
    finally:
        await staged.drop()


async def _refresh_additive(
    conn: asyncpg.Connection,
    experiment_key: str,
    columns: Sequence[sql.Column],
    lookback: float,
    watermark: datetime,
    staged: StagedEvents,
) -> sql.Rollup:
    sig = signature_of(columns, lookback)
    k = len(columns)
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_nestloop = off")  # see collect_stats
        # Folds read few rows through a few hundred expressions: JIT would cost more.
        await conn.execute("SET LOCAL jit = off")
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
        moments: dict[str, rollup_moments.Moments] = {}
        if state is not None and state["moments_built"]:
            moments = await rollup_moments.read_moments(conn, experiment_key, sig) or {}
        rebuild = state is not None and not state["moments_built"]
        deltas: list[asyncpg.Record] = []
        if old is not None and watermark <= old:
            watermark = old
        elif old is not None:
            table = await staged.table(old, watermark)
            text, params = _advance_query(experiment_key, sig, columns, lookback, table)
            # The staged events are few: their units' exposures and rows are read by
            # primary key (the staged table is analysed, so a large fold still hashes).
            await conn.execute("SET LOCAL enable_nestloop = on")
            deltas += await conn.fetch(text, *params, timeout=None)
            await conn.execute("SET LOCAL enable_nestloop = off")
        exposed = await quantile_rollup.exposed_units(conn, experiment_key)
        grown = 0
        if n_units != exposed:  # some exposed unit has no row yet
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
                added = await conn.fetch(text, *params, first, timeout=None)
                grown = sum(int(r["units"]) for r in added)
                deltas += added
            n_units += grown
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
        if rebuild:
            await rollup_moments.rebuild_moments(conn, experiment_key, sig, k)
        elif deltas:
            length = rollup_moments.moments_length(k)
            total = rollup_moments.combine(moments, deltas, length)
            await rollup_moments.write_moments(conn, experiment_key, sig, total)
        if grown > n_units // 10:
            # The analysis's plans depend on the rollup's size (rollup_moments): keep its
            # statistics current when it grew, rather than wait for autovacuum.
            await conn.execute("ANALYZE analysis_rollups", timeout=None)
        await _drop_stale(conn, experiment_key)
    return sql.Rollup(sig, watermark, n_units == exposed, raw_since(watermark))


def _aggs(p: sql.Params, columns: Sequence[sql.Column]) -> str:
    return ", ".join(f"{c.aggregate(p)} AS c{k}" for k, c in enumerate(columns))


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
    staged: str,
) -> tuple[str, list[object]]:
    """Adds the staged events (:class:`StagedEvents`: those received since the last fold)
    to the rows of the units already rolled up; returns the change of the moments per
    variant (``variant_key, units, moments``). Only the units with such events are read
    and written."""
    p = sql.Params()
    exp, s = p.add(experiment_key, "text"), p.add(sig, "text")
    join = _join(p, columns, lookback)
    aggs = _aggs(p, columns)
    k = len(columns)
    added = ", ".join(f"r.sums[{j + 1}] + d.c{j}" for j in range(k))
    text = f"""WITH d AS MATERIALIZED (
    SELECT u.unit_id, u.variant_key, {aggs}
    FROM {staged} ev JOIN exposures u ON u.experiment_key = {exp} AND {join}
    GROUP BY u.unit_id, u.variant_key),
j AS MATERIALIZED (
    SELECT r.ctid AS row_id, d.variant_key, r.sums AS o, ARRAY[{added}] AS s
    FROM d JOIN analysis_rollups r ON r.experiment_key = {exp} AND r.signature = {s}
     AND r.unit_id = d.unit_id),
upd AS (
    UPDATE analysis_rollups r SET sums = j.s FROM j
    WHERE r.ctid = j.row_id)  -- the row just read: no second index lookup
SELECT variant_key, 0::bigint AS units, {rollup_moments.delta_exprs("s", "o", k)} AS moments
FROM j GROUP BY variant_key"""
    return text, p.values


def _new_units_query(
    experiment_key: str,
    sig: str,
    columns: Sequence[sql.Column],
    lookback: float,
    watermark: datetime,
) -> tuple[str, list[object]]:
    """Rows for the exposed units without one: their events received before the
    watermark; returns their moments per variant (``variant_key, units, moments``). The
    last parameter (appended by the caller) is their earliest exposure, for pruning."""
    p = sql.Params()
    exp, s = p.add(experiment_key, "text"), p.add(sig, "text")
    join = _join(p, columns, lookback)
    hi = p.add(watermark, "timestamptz")
    aggs = _aggs(p, columns)
    back = p.add(lookback, "float8")
    first = f"${len(p.values) + 1}::timestamptz"
    sums = ", ".join(f"c{j}" for j in range(len(columns)))
    text = f"""WITH fresh AS MATERIALIZED (
    SELECT u.unit_id, u.variant_key, {aggs}
    FROM (SELECT x.unit_id, x.variant_key, x.exposed_at FROM exposures x
          WHERE x.experiment_key = {exp} AND NOT EXISTS (
              SELECT 1 FROM analysis_rollups r WHERE r.experiment_key = {exp}
                 AND r.signature = {s} AND r.unit_id = x.unit_id)) u
    LEFT JOIN events ev ON {join} AND ev.received_at < {hi}
     AND ev.ts >= {first} - make_interval(secs => {back})
    GROUP BY u.unit_id, u.variant_key),
made AS MATERIALIZED (
    SELECT unit_id, variant_key, ARRAY[{sums}] AS sums FROM fresh),
ins AS (
    INSERT INTO analysis_rollups (experiment_key, signature, unit_id, sums)
    SELECT {exp}, {s}, unit_id, sums FROM made)
SELECT variant_key, count(*) AS units, {rollup_moments.moment_exprs("sums", len(columns))}
    AS moments
FROM made GROUP BY variant_key"""
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
        await conn.execute(
            "DELETE FROM analysis_event_diagnostics WHERE experiment_key = $1::text",
            experiment_key,
        )
