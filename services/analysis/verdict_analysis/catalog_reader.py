"""Read-only PostgreSQL adapter: experiments and metric definitions as analysis sees them.

Analysis reads the configuration tables directly, decoded by the platform's `config_codec` (the
mapping ExperimentService's repository writes with), so no other process is needed to analyse;
stopping goes through ExperimentService.
"""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from verdict.v1 import experiment_pb2
from verdict_platform.config_codec import (
    EXPERIMENT_COLUMNS,
    METRIC_COLUMNS,
    experiment_from_row,
    metric_from_row,
)
from verdict_platform.db import unavailable_on_disconnect


class ExperimentCatalog:
    """Experiments and metrics from the configuration tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        """The experiment, or None when unknown."""
        async with unavailable_on_disconnect():
            row = await self._pool.fetchrow(
                f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE key = $1", key
            )
        return None if row is None else experiment_from_row(row)

    async def metrics(self, keys: Collection[str]) -> dict[str, experiment_pb2.Metric]:
        """The definitions of the metrics named (unknown keys are left out)."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                f"SELECT {METRIC_COLUMNS} FROM metrics WHERE key = ANY($1::text[])", list(keys)
            )
        return {row["key"]: metric_from_row(row) for row in rows}

    async def running_keys(self) -> list[str]:
        """Keys of the running experiments."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                "SELECT key FROM experiments WHERE status = 'running' ORDER BY key"
            )
        return [row["key"] for row in rows]
