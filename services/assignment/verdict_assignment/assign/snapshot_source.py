"""The snapshot's source: the running configuration loaded from PostgreSQL (the adapter owning
this side's SQL). Rows are decoded by the platform's `config_codec`, the same mapping
ExperimentService's repository writes with; `config_state.version` is bumped by every change.
"""

from __future__ import annotations

import asyncpg

from verdict.v1 import assignment_pb2
from verdict_assignment.assign.snapshot import snapshot_proto
from verdict_platform.config_codec import (
    EXPERIMENT_COLUMNS,
    SAVED_GROUP_COLUMNS,
    experiment_from_row,
    saved_group_from_row,
)
from verdict_platform.db import unavailable_on_disconnect

_VERSION = "SELECT version FROM config_state WHERE id = 1"
_EXPERIMENTS = f"""
    SELECT {EXPERIMENT_COLUMNS} FROM experiments
    WHERE status IN ('running', 'stopped') ORDER BY key
"""
_GROUPS = f"SELECT {SAVED_GROUP_COLUMNS} FROM saved_groups ORDER BY key"


class SnapshotSource:
    """Reads the configuration the snapshot is built from."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def version(self) -> int:
        """The current config_state.version."""
        async with unavailable_on_disconnect():
            value: int = await self._pool.fetchval(_VERSION)
        return value

    async def load(self) -> assignment_pb2.ConfigSnapshot:
        """A consistent copy of the configuration (one repeatable-read transaction)."""
        async with (
            unavailable_on_disconnect(),
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            version = await conn.fetchval(_VERSION)
            experiments = await conn.fetch(_EXPERIMENTS)
            groups = await conn.fetch(_GROUPS)
        return snapshot_proto(
            version,
            [experiment_from_row(row) for row in experiments],
            [saved_group_from_row(row) for row in groups],
        )
