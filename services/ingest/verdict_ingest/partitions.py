"""Daily partitions of `events`: created ahead of time, dropped past the retention.

The SQL functions live in the platform's migration 0001 (`verdict_ensure_event_partitions`,
`verdict_drop_event_partitions`); this module calls them and runs the maintenance loop that keeps
partitions ready for every timestamp the validation window accepts (plus a week ahead), so an
insert never waits on DDL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)

AHEAD_DAYS = 7
CHECK_INTERVAL_S = 3600.0


class Executor(Protocol):
    """An asyncpg connection or pool: what the partition functions need."""

    async def fetchval(self, query: str, *args: object) -> object: ...


@dataclass(frozen=True)
class PartitionPlan:
    """Which days must have a partition, and before which day partitions are dropped."""

    first_day: date
    days: int
    drop_before: date


def plan_for(today: date, past_window_days: int, retention_days: int) -> PartitionPlan:
    """Partitions from the oldest accepted day (plus one, for clock skew) to a week ahead."""
    first = today - timedelta(days=past_window_days + 1)
    return PartitionPlan(
        first_day=first,
        days=(today - first).days + AHEAD_DAYS + 1,
        drop_before=today - timedelta(days=retention_days),
    )


async def ensure_partitions(db: Executor, first_day: date, days: int) -> int:
    """Creates the missing partitions of [first_day, first_day + days); returns how many."""
    created = await db.fetchval("SELECT verdict_ensure_event_partitions($1, $2)", first_day, days)
    return int(created) if isinstance(created, int) else 0


async def drop_partitions(db: Executor, before_day: date) -> int:
    """Drops the partitions of days before `before_day`; returns how many."""
    dropped = await db.fetchval("SELECT verdict_drop_event_partitions($1)", before_day)
    return int(dropped) if isinstance(dropped, int) else 0


async def maintain(db: Executor, plan: PartitionPlan) -> tuple[int, int]:
    """Applies a plan: (partitions created, partitions dropped)."""
    created = await ensure_partitions(db, plan.first_day, plan.days)
    dropped = await drop_partitions(db, plan.drop_before)
    return created, dropped


async def maintain_forever(db: Executor, past_window_days: int, retention_days: int) -> None:
    """Maintains partitions now and then hourly; failures (database down) are retried."""
    while True:
        today = datetime.now(UTC).date()
        try:
            created, dropped = await maintain(db, plan_for(today, past_window_days, retention_days))
        except Exception as exc:  # keep the loop alive: the next round retries
            log.warning("partition maintenance failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(10.0)
            continue
        if created or dropped:
            # Not `created`: a LogRecord attribute; an `extra` naming one raises and ended the loop.
            log.info(
                "event partitions maintained",
                extra={"partitions_created": created, "partitions_dropped": dropped},
            )
        await asyncio.sleep(CHECK_INTERVAL_S)
