"""Incremental quantile metrics: each qualifying event's value, rolled up to a watermark.

Quantiles do not add, so the rollup keeps the values themselves, narrow (unit, arm,
bucket, value) and already cut to the metric's window after exposure; the analysis reads
them plus the raw events received from the watermark on (:mod:`.quantile_sql`). One rollup
per experiment and quantile definition (event, measure, window, bucket scheme), refreshed
with the additive rollups (:func:`.rollup.refresh_rollups`) to the same ``received_at``
watermark, and exact for the same reasons: units exposed after a refresh have no
membership row and read all their events raw; conflicts and segments filter units when
reading; ``until`` uses the full path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from verdict_analysis import stats

from .fold_events import StagedEvents
from .quantile_sql import BUCKET_SCHEME, QuantileRollup, value_bucket
from .spec import MetricSpec
from .sql import Column, Params, _measure

__all__ = [
    "exposed_units",
    "quantile_signature",
    "read_quantile_rollup",
    "refresh_quantile_rollups",
]

LATE_S = 86400.0
"""Analyses read raw values with ``ts`` from this long before the watermark (as
:data:`.rollup.LATE_S`, which imports this module)."""

_STALE = "7 days"
"""Quantile rollups unrefreshed for this long are dropped (the metric left the analysis)."""


def _definition(spec: MetricSpec) -> dict[str, object]:
    return {
        "event_name": spec.event_name,
        "measure": spec.measure,
        "window_s": spec.window_s,
        "buckets": BUCKET_SCHEME,
    }


def quantile_signature(spec: MetricSpec) -> str:
    """Identifies the values a quantile rollup holds (not the level: p50 and p95 share)."""
    text = json.dumps(_definition(spec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def read_quantile_rollup(
    conn: asyncpg.Connection, experiment_key: str, spec: MetricSpec
) -> QuantileRollup | None:
    """The current rollup of a quantile metric's values, or None when there is none."""
    row = await conn.fetchrow(
        "SELECT rollup_id, watermark, n_units FROM analysis_quantile_state"
        " WHERE experiment_key = $1::text AND signature = $2::text",
        experiment_key,
        quantile_signature(spec),
    )
    if row is None:
        return None
    exposed = await exposed_units(conn, experiment_key)
    mark = row["watermark"]
    since = mark - timedelta(seconds=LATE_S)
    return QuantileRollup(row["rollup_id"], mark, row["n_units"] == exposed, since)


async def exposed_units(conn: asyncpg.Connection, experiment_key: str) -> int:
    """The experiment's exposed units (any variant). Exposures are never deleted, so a
    rollup holding this many units holds all of them."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM exposures WHERE experiment_key = $1::text", experiment_key
        )
    )


async def refresh_quantile_rollups(
    conn: asyncpg.Connection,
    experiment_key: str,
    metrics: Sequence[MetricSpec],
    watermark: datetime,
    staged: StagedEvents,
) -> None:
    """Folds each quantile metric's values before ``watermark`` (never moved back) into its
    rollup, and adds the newly exposed units. ``staged`` stages the events received since
    the last fold. One transaction per rollup,
    serialised by a transaction-level advisory lock."""
    seen: set[str] = set()
    for spec in metrics:
        if spec.type is not stats.MetricType.QUANTILE:
            continue
        sig = quantile_signature(spec)
        if sig in seen:
            continue
        seen.add(sig)
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_nestloop = off")  # see collect_stats
            await _refresh_one(conn, experiment_key, spec, sig, watermark, staged)
    await conn.execute(
        f"""DELETE FROM analysis_quantile_state WHERE experiment_key = $1::text
AND refreshed_at < now() - interval '{_STALE}'""",
        experiment_key,
    )


async def _refresh_one(
    conn: asyncpg.Connection,
    experiment_key: str,
    spec: MetricSpec,
    sig: str,
    new: datetime,
    staged: StagedEvents,
) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
        f"verdict.quantile_rollup:{experiment_key}:{sig}",
    )
    row = await conn.fetchrow(
        "SELECT rollup_id, watermark, n_units FROM analysis_quantile_state"
        " WHERE experiment_key = $1::text AND signature = $2::text",
        experiment_key,
        sig,
    )
    n_units = 0 if row is None else row["n_units"]
    if row is None:
        rollup_id = await conn.fetchval(
            """INSERT INTO analysis_quantile_state
    (experiment_key, signature, definition, watermark)
VALUES ($1::text, $2::text, $3::jsonb, $4::timestamptz) RETURNING rollup_id""",
            experiment_key,
            sig,
            json.dumps(_definition(spec)),
            new,
        )
    else:
        rollup_id, old = row["rollup_id"], row["watermark"]
        if new <= old:
            new = old
        else:
            table = await staged.table(old, new)
            text, params = _advance_query(experiment_key, spec, rollup_id, table)
            await conn.execute("SET LOCAL enable_nestloop = on")  # see rollup._refresh_additive
            await conn.execute(text, *params, timeout=None)
            await conn.execute("SET LOCAL enable_nestloop = off")
    if n_units != await exposed_units(conn, experiment_key):
        text, params = _new_units_query(experiment_key, spec, rollup_id, new)
        await conn.execute(text, *params, timeout=None)
        n_units = await conn.fetchval(
            "SELECT count(*) FROM analysis_quantile_units WHERE rollup_id = $1::int", rollup_id
        )
    await conn.execute(
        "UPDATE analysis_quantile_state SET watermark = $2::timestamptz, n_units = $3::bigint,"
        " refreshed_at = now() WHERE rollup_id = $1::int",
        rollup_id,
        new,
        n_units,
    )


def _insert_values(
    p: Params, spec: MetricSpec, rollup_id: int, units: str, ts: str, source: str = "events"
) -> str:
    """INSERT of the qualifying values of the events of ``units`` (``u``) in ``source``
    matching ``ts``."""
    value = _measure(p, spec.measure)
    cond = Column(spec.event_name, spec.measure, window_s=spec.window_s).condition(p)
    rid = p.add(rollup_id, "int")
    return f"""INSERT INTO analysis_quantile_values (rollup_id, unit_id, variant_key, bucket, value)
SELECT {rid}, r.unit_id, r.variant_key, {value_bucket("r.x")}, r.x
FROM (SELECT u.unit_id, u.variant_key, {value} AS x
      FROM {units} u JOIN {source} ev ON ev.unit_id = u.unit_id AND {ts}
      WHERE {cond}) r
WHERE r.x IS NOT NULL"""


def _advance_query(
    experiment_key: str, spec: MetricSpec, rollup_id: int, staged: str
) -> tuple[str, list[object]]:
    """Adds the values of the staged events (:class:`.fold_events.StagedEvents`: those
    received since the last fold) of the units already rolled up."""
    p = Params()
    exp, rid = p.add(experiment_key, "text"), p.add(rollup_id, "int")
    units = f"""(SELECT x.unit_id, x.variant_key, x.exposed_at FROM exposures x
      JOIN analysis_quantile_units m ON m.rollup_id = {rid} AND m.unit_id = x.unit_id
      WHERE x.experiment_key = {exp})"""
    return _insert_values(p, spec, rollup_id, units, "true", staged), p.values


def _new_units_query(
    experiment_key: str, spec: MetricSpec, rollup_id: int, watermark: datetime
) -> tuple[str, list[object]]:
    """Membership rows for the exposed units without one, and their values received before
    the watermark (from their exposure on: the earliest bounds the scan of the partitions)."""
    p = Params()
    exp, rid = p.add(experiment_key, "text"), p.add(rollup_id, "int")
    hi = p.add(watermark, "timestamptz")
    insert = _insert_values(
        p,
        spec,
        rollup_id,
        "fresh",
        f"ev.received_at < {hi} AND ev.ts >= (SELECT min(exposed_at) FROM fresh)",
    )
    text = f"""WITH fresh AS MATERIALIZED (
    SELECT x.unit_id, x.variant_key, x.exposed_at FROM exposures x
    WHERE x.experiment_key = {exp} AND NOT EXISTS (
        SELECT 1 FROM analysis_quantile_units m
        WHERE m.rollup_id = {rid} AND m.unit_id = x.unit_id)),
members AS (
    INSERT INTO analysis_quantile_units (rollup_id, unit_id) SELECT {rid}, unit_id FROM fresh)
{insert}"""
    return text, p.values
