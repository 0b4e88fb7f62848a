"""PostgreSQL adapter of the `ExposureCounts` port: units first exposed per UTC day and variant.

One aggregate over the experiment's exposures (its primary key starts with the experiment key,
so the scan is of that experiment only); days without exposures are filled in by the use case.
When the experiment hashed another attribute than the unit id, a unit is an analysis unit (the
hashed value, `metrics.analysis_units`), counted on the day its first user was exposed.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from verdict_analysis.metrics.analysis_units import analysis_unit, hashed
from verdict_platform.db import unavailable_on_disconnect

MAX_DAYS = 366
"""The timeline covers at most the last this many days of exposures."""

_PER_UNIT = "SELECT exposed_at, variant_key FROM exposures WHERE experiment_key = $1"
_PER_ANALYSIS_UNIT = f"""SELECT min(exposed_at) AS exposed_at, variant_key FROM exposures x
                       WHERE experiment_key = $1 GROUP BY {analysis_unit("x")}, variant_key"""


class PostgresExposureCounts:
    """Daily exposure counts from the `exposures` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def daily(self, experiment_key: str) -> list[tuple[date, str, int]]:
        """(UTC day, variant key, units first exposed that day), over the last `MAX_DAYS` days
        that have exposures, oldest first."""
        async with unavailable_on_disconnect(), self._pool.acquire() as conn:
            units = _PER_ANALYSIS_UNIT if await hashed(conn, experiment_key) else _PER_UNIT
            rows = await conn.fetch(
                f"""WITH days AS (
                       SELECT (exposed_at AT TIME ZONE 'UTC')::date AS day, variant_key,
                              count(*) AS units
                       FROM ({units}) AS u
                       GROUP BY 1, 2)
                   SELECT day, variant_key, units FROM days
                   WHERE day > (SELECT max(day) FROM days) - $2::int
                   ORDER BY day, variant_key""",
                experiment_key,
                MAX_DAYS,
            )
        return [(row["day"], row["variant_key"], int(row["units"])) for row in rows]

    async def multiple_exposure_units(self, experiment_key: str) -> int:
        """Units of the experiment seen in more than one variant."""
        async with unavailable_on_disconnect():
            count: int = await self._pool.fetchval(
                "SELECT count(DISTINCT unit_id) FROM exposure_conflicts WHERE experiment_key = $1",
                experiment_key,
            )
        return count
