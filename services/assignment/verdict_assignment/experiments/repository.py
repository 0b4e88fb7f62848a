"""PostgreSQL adapter of the configuration store: all of ExperimentService's SQL.

Rows are encoded and decoded by the platform's `config_codec`, the one storage contract the
assignment snapshot and the analysis catalog read with; the `status`, `version` and
`allocation_version` columns are written equal to what the spec says. `config_state.version` is
bumped by the writer in the transaction of each change (`bump_config_version`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.ports import AuditEntry
from verdict_platform.config_codec import (
    EXPERIMENT_COLUMNS,
    METRIC_COLUMNS,
    SAVED_GROUP_COLUMNS,
    STATUS_COLUMN,
    experiment_from_row,
    experiment_spec,
    metric_from_row,
    metric_spec,
    saved_group_from_row,
    saved_group_members,
)
from verdict_platform.db import unavailable_on_disconnect


def _time(experiment_field: Any) -> datetime | None:
    if experiment_field.ByteSize() == 0:
        return None
    moment: datetime = experiment_field.ToDatetime(tzinfo=UTC)
    return moment


def _audit(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        experiment_key=row["experiment_key"] or "",
        action=row["action"],
        actor=row["actor"],
        at=row["at"],
        changes=json.loads(row["changes"]),
        reason=row["reason"],
        rule=row["rule"],
    )


class PostgresWrites:
    """The writes of one transaction on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def experiment_for_update(self, key: str) -> experiment_pb2.Experiment | None:
        row = await self._conn.fetchrow(
            f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE key = $1 FOR UPDATE", key
        )
        return None if row is None else experiment_from_row(row)

    async def experiment_for_share(self, key: str) -> experiment_pb2.Experiment | None:
        row = await self._conn.fetchrow(
            f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE key = $1 FOR SHARE", key
        )
        return None if row is None else experiment_from_row(row)

    async def experiments_naming_holdout(self, key: str) -> list[str]:
        # The spec is proto JSON, whose field names are lowerCamelCase.
        rows = await self._conn.fetch(
            """SELECT key FROM experiments
               WHERE spec->>'holdoutKey' = $1 AND status <> 'archived' ORDER BY key""",
            key,
        )
        return [row["key"] for row in rows]

    async def _version(self, experiment: experiment_pb2.Experiment, spec: str, actor: str) -> None:
        await self._conn.execute(
            """INSERT INTO experiment_versions
                   (experiment_key, version, spec, changed_at, changed_by)
               VALUES ($1, $2, $3::jsonb, $4, $5)""",
            experiment.key,
            experiment.version,
            spec,
            _time(experiment.update_time),
            actor,
        )

    async def insert_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> bool:
        spec = experiment_spec(experiment)
        inserted = await self._conn.fetchval(
            """INSERT INTO experiments
                   (key, status, spec, version, allocation_version, created_at, updated_at)
               VALUES ($1, $2, $3::jsonb, $4, $5, $6, $6)
               ON CONFLICT (key) DO NOTHING
               RETURNING key""",
            experiment.key,
            STATUS_COLUMN[experiment.status],
            spec,
            experiment.version,
            experiment.allocation_version,
            _time(experiment.create_time),
        )
        if inserted is None:
            return False
        await self._version(experiment, spec, actor)
        return True

    async def save_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> None:
        spec = experiment_spec(experiment)
        stopped = experiment.status in (
            experiment_pb2.EXPERIMENT_STATUS_STOPPED,
            experiment_pb2.EXPERIMENT_STATUS_ARCHIVED,
        )
        await self._conn.execute(
            """UPDATE experiments
               SET status = $2, spec = $3::jsonb, version = $4, allocation_version = $5,
                   updated_at = $6, started_at = $7, stopped_at = $8
               WHERE key = $1""",
            experiment.key,
            STATUS_COLUMN[experiment.status],
            spec,
            experiment.version,
            experiment.allocation_version,
            _time(experiment.update_time),
            _time(experiment.start_time),
            _time(experiment.decision.stop_time) if stopped else None,
        )
        await self._version(experiment, spec, actor)

    async def known_metric_keys(self, keys: Collection[str]) -> set[str]:
        rows = await self._conn.fetch(
            "SELECT key FROM metrics WHERE key = ANY($1::text[])", list(keys)
        )
        return {row["key"] for row in rows}

    async def insert_metric(self, metric: experiment_pb2.Metric) -> bool:
        inserted = await self._conn.fetchval(
            """INSERT INTO metrics (key, spec, created_at) VALUES ($1, $2::jsonb, $3)
               ON CONFLICT (key) DO NOTHING RETURNING key""",
            metric.key,
            metric_spec(metric),
            _time(metric.create_time),
        )
        return inserted is not None

    async def metric_for_update(self, key: str) -> experiment_pb2.Metric | None:
        row = await self._conn.fetchrow(
            f"SELECT {METRIC_COLUMNS} FROM metrics WHERE key = $1 FOR UPDATE", key
        )
        return None if row is None else metric_from_row(row)

    async def save_metric(self, metric: experiment_pb2.Metric) -> None:
        await self._conn.execute(
            "UPDATE metrics SET spec = $2::jsonb WHERE key = $1", metric.key, metric_spec(metric)
        )

    async def saved_group_keys(self) -> set[str]:
        return {row["key"] for row in await self._conn.fetch("SELECT key FROM saved_groups")}

    async def saved_group_for_update(self, key: str) -> experiment_pb2.SavedGroup | None:
        row = await self._conn.fetchrow(
            f"SELECT {SAVED_GROUP_COLUMNS} FROM saved_groups WHERE key = $1 FOR UPDATE", key
        )
        return None if row is None else saved_group_from_row(row)

    async def put_saved_group(self, group: experiment_pb2.SavedGroup) -> None:
        await self._conn.execute(
            """INSERT INTO saved_groups (key, members, updated_at) VALUES ($1, $2::jsonb, $3)
               ON CONFLICT (key) DO UPDATE
               SET members = EXCLUDED.members, updated_at = EXCLUDED.updated_at""",
            group.key,
            saved_group_members(group),
            _time(group.update_time),
        )

    async def record(self, entry: AuditEntry) -> None:
        await self._conn.execute(
            """INSERT INTO audit_log (experiment_key, action, actor, at, changes, reason, rule)
               VALUES (NULLIF($1, ''), $2, $3, $4, $5::jsonb, $6, $7)""",
            entry.experiment_key,
            entry.action,
            entry.actor,
            entry.at,
            json.dumps(entry.changes),
            entry.reason,
            entry.rule,
        )

    async def snapshot_bytes(self) -> int:
        size: int = await self._conn.fetchval(
            """SELECT coalesce((SELECT sum(octet_length(spec::text)) FROM experiments
                                WHERE status IN ('running', 'stopped')), 0)
                    + coalesce((SELECT sum(octet_length(members::text)) FROM saved_groups), 0)"""
        )
        return size

    async def bump_config_version(self) -> int:
        version: int = await self._conn.fetchval(
            "UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version"
        )
        return version


class PostgresConfigStore:
    """The configuration store on a connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[PostgresWrites]:
        """A transaction; commits when the block exits normally."""
        async with (
            unavailable_on_disconnect(),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            yield PostgresWrites(conn)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with unavailable_on_disconnect():
            rows: list[asyncpg.Record] = await self._pool.fetch(sql, *args)
            return rows

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        rows = await self._fetch(
            f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE key = $1", key
        )
        return experiment_from_row(rows[0]) if rows else None

    async def config_version(self) -> int:
        rows = await self._fetch("SELECT version FROM config_state WHERE id = 1")
        version: int = rows[0]["version"]
        return version

    async def experiments(
        self,
        statuses: Collection[int],
        after: tuple[datetime, str] | None,
        limit: int,
        query: str = "",
    ) -> Sequence[experiment_pb2.Experiment]:
        names = [STATUS_COLUMN[s] for s in statuses]
        # strpos, not LIKE: the user's text needs no escaping of % and _.
        rows = await self._fetch(
            f"""SELECT {EXPERIMENT_COLUMNS} FROM experiments
               WHERE status = ANY($1::text[])
                 AND ($2::timestamptz IS NULL OR (created_at, key) < ($2, $3))
                 AND ($4 = '' OR strpos(lower(key || ' ' || coalesce(spec->>'name', '')),
                                        lower($4)) > 0)
               ORDER BY created_at DESC, key DESC LIMIT $5""",
            names,
            None if after is None else after[0],
            "" if after is None else after[1],
            query,
            limit,
        )
        return [experiment_from_row(row) for row in rows]

    async def metric(self, key: str) -> experiment_pb2.Metric | None:
        rows = await self._fetch(f"SELECT {METRIC_COLUMNS} FROM metrics WHERE key = $1", key)
        return metric_from_row(rows[0]) if rows else None

    async def metrics(self, after: str | None, limit: int) -> Sequence[experiment_pb2.Metric]:
        rows = await self._fetch(
            f"SELECT {METRIC_COLUMNS} FROM metrics WHERE key > $1 ORDER BY key LIMIT $2",
            after or "",
            limit,
        )
        return [metric_from_row(row) for row in rows]

    async def saved_groups(
        self, after: str | None, limit: int
    ) -> Sequence[experiment_pb2.SavedGroup]:
        rows = await self._fetch(
            f"""SELECT {SAVED_GROUP_COLUMNS} FROM saved_groups WHERE key > $1
               ORDER BY key LIMIT $2""",
            after or "",
            limit,
        )
        return [saved_group_from_row(row) for row in rows]

    async def audit_entries(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> Sequence[AuditEntry]:
        columns = "id, experiment_key, action, actor, at, changes::text, reason, rule"
        bound = before_id if before_id is not None else 2**63 - 1
        if experiment_key:
            rows = await self._fetch(
                f"""SELECT {columns} FROM audit_log WHERE experiment_key = $1 AND id < $2
                    ORDER BY id DESC LIMIT $3""",
                experiment_key,
                bound,
                limit,
            )
        else:
            rows = await self._fetch(
                f"SELECT {columns} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
                bound,
                limit,
            )
        return [_audit(row) for row in rows]
