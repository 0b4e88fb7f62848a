"""Events the analysis leaves out, counted without rescanning every event at each analysis.

Per event name a metric reads, two counts over the events timestamped from the experiment's
first exposure on: those of an exposed unit before that unit's first exposure
(``before_exposure``: metrics start at exposure), and those of a unit with no exposure to the
experiment (``unexposed``). Each event is classified against the exposures stored when it is
counted.

Counted like the rollups (:mod:`.rollup`): a fold adds the events received in
``[old watermark, new watermark)``, read from the table it stages anyway
(:class:`.fold_events.StagedEvents`), into ``analysis_event_diagnostics``; an event name seen
for the first time is counted over every event received before the watermark (one scan, once).
An analysis adds the events received from the watermark on, in the partitions from
:data:`.rollup.LATE_S` before it (:func:`read_event_counts`): the same rule as the metrics, so
an event sent more than a day late is counted from the next fold on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import asyncpg

from verdict_analysis import stats

from .fold_events import StagedEvents
from .spec import MetricDiagnostics, MetricSpec

__all__ = [
    "EventCounts",
    "event_names",
    "first_exposure",
    "fold_event_counts",
    "metric_diagnostics",
    "read_event_counts",
]

EventCounts = dict[str, tuple[int, int]]
"""Per event name: (before_exposure, unexposed)."""

_COUNT = """SELECT ev.name,
    count(*) FILTER (WHERE ev.ts < x.exposed_at) AS before_exposure,
    count(*) FILTER (WHERE x.unit_id IS NULL) AS unexposed
FROM {source} ev
LEFT JOIN exposures x ON x.experiment_key = $1::text AND x.unit_id = ev.unit_id
WHERE ev.name = ANY($2::text[]) AND ev.ts >= $3::timestamptz{more}
GROUP BY ev.name"""


def event_names(spec: MetricSpec) -> list[str]:
    """The event names a metric reads (numerator and denominator)."""
    names = [spec.event_name]
    if spec.type is stats.MetricType.RATIO and spec.denominator_event_name not in names:
        names.append(spec.denominator_event_name)
    return names


def metric_diagnostics(
    metrics: Sequence[MetricSpec], counts: Mapping[str, tuple[int, int]], capped: Sequence[int]
) -> tuple[MetricDiagnostics, ...]:
    """Per metric, its events' counts summed over its names, and its capped units."""
    out = []
    for spec, n_capped in zip(metrics, capped, strict=True):
        pairs = [counts.get(name, (0, 0)) for name in event_names(spec)]
        out.append(
            MetricDiagnostics(
                spec.key, sum(p[0] for p in pairs), sum(p[1] for p in pairs), n_capped
            )
        )
    return tuple(out)


async def first_exposure(conn: asyncpg.Connection, experiment_key: str) -> datetime | None:
    found = await conn.fetchval(
        "SELECT min(exposed_at) FROM exposures WHERE experiment_key = $1::text", experiment_key
    )
    return found if isinstance(found, datetime) else None


async def _count(
    conn: asyncpg.Connection,
    experiment_key: str,
    names: Iterable[str],
    first: datetime,
    source: str = "events",
    received: tuple[datetime | None, datetime | None] = (None, None),
    ts_from: datetime | None = None,
) -> EventCounts:
    """Counts over ``source`` (``events`` or a staged table), received in ``[lo, hi)``."""
    args: list[object] = [experiment_key, sorted(set(names)), first]
    more = ""
    lo, hi = received
    if lo is not None:
        args.append(lo)
        more += f" AND ev.received_at >= ${len(args)}::timestamptz"
    if hi is not None:
        args.append(hi)
        more += f" AND ev.received_at < ${len(args)}::timestamptz"
    if ts_from is not None:  # a constant bound: PostgreSQL prunes the older day partitions
        args.append(ts_from)
        more += f" AND ev.ts >= ${len(args)}::timestamptz"
    rows = await conn.fetch(_COUNT.format(source=source, more=more), *args, timeout=None)
    return {r["name"]: (int(r["before_exposure"]), int(r["unexposed"])) for r in rows}


async def fold_event_counts(
    conn: asyncpg.Connection,
    experiment_key: str,
    names: Sequence[str],
    watermark: datetime,
    staged: StagedEvents,
) -> None:
    """Brings each name's counts up to ``watermark`` (never moved back); see the module."""
    first = await first_exposure(conn, experiment_key)
    if first is None or not names:
        return  # no exposure: no event is counted yet
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
            f"verdict.diagnostics:{experiment_key}",
        )
        rows = await conn.fetch(
            "SELECT event_name, watermark FROM analysis_event_diagnostics"
            " WHERE experiment_key = $1::text AND event_name = ANY($2::text[])",
            experiment_key,
            sorted(set(names)),
        )
        known = {r["event_name"]: r["watermark"] for r in rows}
        new = sorted(set(names) - set(known))
        by_mark: dict[datetime, list[str]] = defaultdict(list)
        for name, mark in known.items():
            if mark < watermark:
                by_mark[mark].append(name)
        added: EventCounts = {}
        if new:
            # Few staged rows or a first scan: the exposures are read by primary key either way.
            added.update(await _count(conn, experiment_key, new, first, received=(None, watermark)))
        for mark, group in by_mark.items():
            table = await staged.table(mark, watermark)
            added.update(await _count(conn, experiment_key, group, first, source=table))
        moved = [*new, *(n for group in by_mark.values() for n in group)]
        if not moved:
            return
        await conn.executemany(
            """INSERT INTO analysis_event_diagnostics
    (experiment_key, event_name, watermark, before_exposure, unexposed)
VALUES ($1::text, $2::text, $3::timestamptz, $4::bigint, $5::bigint)
ON CONFLICT (experiment_key, event_name) DO UPDATE SET
    watermark = EXCLUDED.watermark,
    before_exposure = analysis_event_diagnostics.before_exposure + EXCLUDED.before_exposure,
    unexposed = analysis_event_diagnostics.unexposed + EXCLUDED.unexposed,
    refreshed_at = now()""",
            [(experiment_key, n, watermark, *added.get(n, (0, 0))) for n in moved],
        )


async def read_event_counts(
    conn: asyncpg.Connection,
    experiment_key: str,
    names: Sequence[str],
    late_s: float,
    *,
    folded: bool = True,
) -> EventCounts:
    """Current counts per name: the folded ones plus the events received after their
    watermark (from ``late_s`` before it on); every event when not ``folded`` or not folded
    yet. Runs inside the analysis's read-only transaction."""
    first = await first_exposure(conn, experiment_key)
    wanted = sorted(set(names))
    if first is None or not wanted:
        return {}
    rows = []
    if folded:
        rows = await conn.fetch(
            "SELECT event_name, watermark, before_exposure, unexposed"
            " FROM analysis_event_diagnostics"
            " WHERE experiment_key = $1::text AND event_name = ANY($2::text[])",
            experiment_key,
            wanted,
        )
    totals: EventCounts = {r["event_name"]: (r["before_exposure"], r["unexposed"]) for r in rows}
    by_mark: dict[datetime, list[str]] = defaultdict(list)
    for r in rows:
        by_mark[r["watermark"]].append(r["event_name"])
    unfolded = [n for n in wanted if n not in totals]
    parts = []
    if unfolded:
        parts.append(await _count(conn, experiment_key, unfolded, first))
    if by_mark:
        # The last hour's few events look their units' exposures up by primary key, rather
        # than hash every exposure of the experiment (the transaction turns nested loops off).
        await conn.execute("SET LOCAL enable_nestloop = on")
        for mark, group in by_mark.items():
            since = max(first, mark - timedelta(seconds=late_s))
            parts.append(
                await _count(
                    conn, experiment_key, group, first, received=(mark, None), ts_from=since
                )
            )
        await conn.execute("SET LOCAL enable_nestloop = off")
    for part in parts:
        for name, (before, unexposed) in part.items():
            b, u = totals.get(name, (0, 0))
            totals[name] = (b + before, u + unexposed)
    return totals
