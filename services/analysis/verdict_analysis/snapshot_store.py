"""PostgreSQL adapter of stored snapshots (table `analysis_snapshots`): store, latest, pages.

The proto is stored serialised; `id` and `create_time` come from the row's columns, so the bytes
never disagree with them. The whole population is stored with an empty segment.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from verdict.v1 import analysis_pb2
from verdict_platform.db import unavailable_on_disconnect

_COLUMNS = "id, created_at, snapshot"


def _snapshot(row: asyncpg.Record) -> analysis_pb2.ResultSnapshot:
    snapshot = analysis_pb2.ResultSnapshot.FromString(bytes(row["snapshot"]))
    snapshot.id = row["id"]
    snapshot.create_time.FromDatetime(row["created_at"])
    return snapshot


def _segment(snapshot: analysis_pb2.ResultSnapshot) -> tuple[str, str]:
    if not snapshot.HasField("segment"):
        return "", ""
    return snapshot.segment.dimension, snapshot.segment.value


class SnapshotStore:
    """Every analysis snapshot of every experiment."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, snapshot: analysis_pb2.ResultSnapshot) -> analysis_pb2.ResultSnapshot:
        """Stores a snapshot; returns it with its id and creation time."""
        dimension, value = _segment(snapshot)
        body = analysis_pb2.ResultSnapshot()
        body.CopyFrom(snapshot)
        body.ClearField("id")
        body.ClearField("create_time")
        async with unavailable_on_disconnect():
            row = await self._pool.fetchrow(
                f"""INSERT INTO analysis_snapshots
                        (experiment_key, segment_dimension, segment_value, snapshot)
                    VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}""",
                snapshot.experiment_key,
                dimension,
                value,
                body.SerializeToString(),
            )
        return _snapshot(row)

    async def latest(
        self, experiment_key: str, dimension: str = "", value: str = ""
    ) -> analysis_pb2.ResultSnapshot | None:
        """The newest snapshot of the experiment for a segment (empty: whole population)."""
        async with unavailable_on_disconnect():
            row = await self._pool.fetchrow(
                f"""SELECT {_COLUMNS} FROM analysis_snapshots
                    WHERE experiment_key = $1 AND segment_dimension = $2 AND segment_value = $3
                    ORDER BY id DESC LIMIT 1""",
                experiment_key,
                dimension,
                value,
            )
        return _snapshot(row) if row is not None else None

    async def page(
        self, experiment_key: str, limit: int, before_id: int | None = None
    ) -> list[analysis_pb2.ResultSnapshot]:
        """Whole-population snapshots, newest first, with ids below `before_id`."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                f"""SELECT {_COLUMNS} FROM analysis_snapshots
                    WHERE experiment_key = $1 AND segment_dimension = '' AND segment_value = ''
                      AND ($2::bigint IS NULL OR id < $2)
                    ORDER BY id DESC LIMIT $3""",
                experiment_key,
                before_id,
                limit,
            )
        return [_snapshot(row) for row in rows]

    async def newer(self, experiment_key: str, after_id: int) -> list[analysis_pb2.ResultSnapshot]:
        """Whole-population snapshots stored after `after_id`, oldest first."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                f"""SELECT {_COLUMNS} FROM analysis_snapshots
                    WHERE experiment_key = $1 AND segment_dimension = '' AND segment_value = ''
                      AND id > $2
                    ORDER BY id LIMIT 100""",
                experiment_key,
                after_id,
            )
        return [_snapshot(row) for row in rows]

    async def segments(
        self, experiment_key: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """(dimension, value) pairs with a stored snapshot, by dimension then value."""
        dimension, value = after if after is not None else ("", "")
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                """SELECT DISTINCT segment_dimension, segment_value FROM analysis_snapshots
                   WHERE experiment_key = $1 AND segment_dimension <> ''
                     AND (segment_dimension, segment_value) > ($2, $3)
                   ORDER BY segment_dimension, segment_value LIMIT $4""",
                experiment_key,
                dimension,
                value,
                limit,
            )
        return [(row[0], row[1]) for row in rows]

    async def latest_time(self, experiment_key: str) -> datetime | None:
        """When the newest whole-population snapshot was stored, or None."""
        async with unavailable_on_disconnect():
            moment: datetime | None = await self._pool.fetchval(
                """SELECT created_at FROM analysis_snapshots
                   WHERE experiment_key = $1 AND segment_dimension = '' AND segment_value = ''
                   ORDER BY id DESC LIMIT 1""",
                experiment_key,
            )
        return moment
