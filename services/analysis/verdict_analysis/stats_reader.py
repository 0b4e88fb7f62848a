"""PostgreSQL adapters of the `Locks` and `StatsReader` ports: the metrics SQL on the connection
that holds the experiment's analysis lock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg

from verdict_analysis.advisory_lock import analysis_lock
from verdict_analysis.metrics import CollectedStats, MetricSpec, Segment
from verdict_analysis.metrics.collect import collect_stats
from verdict_analysis.metrics.collect import segment_values as _segment_values
from verdict_analysis.ports import StatsReader
from verdict_platform.db import unavailable_on_disconnect


class DatabaseStats:
    """`StatsReader` on one PostgreSQL connection."""

    def __init__(self, conn: asyncpg.Connection, segment_limit: int = 20) -> None:
        self._conn = conn
        self._segment_limit = segment_limit

    async def collect(
        self,
        experiment_key: str,
        variant_keys: Sequence[str],
        control_key: str,
        metrics: Sequence[MetricSpec],
        *,
        cuped_lookback_s: float | None,
        segment: Segment | None,
        quantile_alpha: float,
    ) -> CollectedStats:
        async with unavailable_on_disconnect():
            return await collect_stats(
                self._conn,
                experiment_key,
                variant_keys,
                control_key,
                metrics,
                cuped_lookback_s=cuped_lookback_s,
                segment=segment,
                quantile_alpha=quantile_alpha,
            )

    async def segment_values(self, experiment_key: str, dimension: str) -> list[str]:
        async with unavailable_on_disconnect():
            return await _segment_values(self._conn, experiment_key, dimension, self._segment_limit)


class DatabaseLocks:
    """`Locks` on PostgreSQL advisory locks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def hold(self, experiment_key: str) -> AsyncIterator[StatsReader]:
        async with analysis_lock(self._pool, experiment_key) as conn:
            yield DatabaseStats(conn)
