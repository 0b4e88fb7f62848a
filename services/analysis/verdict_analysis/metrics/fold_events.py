"""The events a fold adds, staged once per refresh: those received in ``[old, new)``.

A fold reads the events received in its window whatever their ``ts`` (a late event lands
in an old partition), so finding them scans the experiment's partitions filtered on
``received_at``. One ``CREATE TEMPORARY TABLE AS`` does that scan (in parallel, which a
data-modifying statement cannot) for every rollup of the refresh, additive and quantile;
the folds then read the few staged rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

__all__ = ["StagedEvents"]


class StagedEvents:
    """Temporary tables of one connection's staged windows; :meth:`drop` removes them."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        experiment_key: str,
        names: Sequence[str],
        lookback_s: float,
    ) -> None:
        """``names``: the event names the rollups read; no rollup counts an event before
        the experiment's earliest exposure minus ``lookback_s`` (found at the first fold)."""
        self._conn = conn
        self._experiment_key = experiment_key
        self._names = sorted(set(names))
        self._lookback = timedelta(seconds=lookback_s)
        self._tables: dict[tuple[datetime, datetime], str] = {}

    async def table(self, old: datetime, new: datetime) -> str:
        """The name of the table of the events received in ``[old, new)`` (columns as
        ``events``: ``unit_id, ts, name, measure_names, measure_values``)."""
        key = (old, new)
        if key not in self._tables:
            first = await self._conn.fetchval(
                "SELECT min(exposed_at) FROM exposures WHERE experiment_key = $1::text",
                self._experiment_key,
            )
            # Without exposures no unit is rolled up: nothing to stage (ts >= NULL).
            since = None if first is None else first - self._lookback
            name = f"verdict_fold_events_{len(self._tables)}"
            async with self._conn.transaction():
                # A few hundred filter expressions over every partition: not worth JIT.
                await self._conn.execute("SET LOCAL jit = off")
                await self._conn.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
                await self._conn.execute(
                    f"""CREATE TEMPORARY TABLE {name} AS
SELECT ev.unit_id, ev.ts, ev.name, ev.measure_names, ev.measure_values FROM events ev
WHERE ev.received_at >= $1::timestamptz AND ev.received_at < $2::timestamptz
  AND ev.ts >= $3::timestamptz AND ev.name = ANY($4::text[])""",
                    old,
                    new,
                    since,
                    self._names,
                    timeout=None,
                )
                await self._conn.execute(f"ANALYZE pg_temp.{name}")
            self._tables[key] = f"pg_temp.{name}"
        return self._tables[key]

    async def drop(self) -> None:
        """Drops the staged tables."""
        for name in self._tables.values():
            await self._conn.execute(f"DROP TABLE IF EXISTS {name}")
        self._tables.clear()
