"""Loads the configuration from PostgreSQL (the adapter owning this side's SQL).

Rows follow ExperimentService's storage contract: `experiments.spec` is the proto JSON of
`verdict.v1.Experiment`, and the `status`, `version` and `allocation_version` columns are
authoritative over whatever the spec says; `saved_groups.members` is a JSON array;
`config_state.version` is bumped by every change.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from google.protobuf import json_format, struct_pb2

from verdict.v1 import assignment_pb2, experiment_pb2
from verdict_assignment.assign.snapshot import snapshot_proto
from verdict_platform.db import unavailable_on_disconnect

STATUS = {
    "draft": experiment_pb2.EXPERIMENT_STATUS_DRAFT,
    "running": experiment_pb2.EXPERIMENT_STATUS_RUNNING,
    "stopped": experiment_pb2.EXPERIMENT_STATUS_STOPPED,
    "archived": experiment_pb2.EXPERIMENT_STATUS_ARCHIVED,
}

_VERSION = "SELECT version FROM config_state WHERE id = 1"
_EXPERIMENTS = """
    SELECT key, status, spec, version, allocation_version FROM experiments
    WHERE status IN ('running', 'stopped') ORDER BY key
"""
_GROUPS = "SELECT key, members FROM saved_groups ORDER BY key"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def experiment_from_row(row: asyncpg.Record) -> experiment_pb2.Experiment:
    """The proto of one `experiments` row, its columns overriding the spec."""
    experiment = json_format.ParseDict(
        _json(row["spec"]), experiment_pb2.Experiment(), ignore_unknown_fields=True
    )
    experiment.key = row["key"]
    experiment.status = STATUS[row["status"]]
    experiment.version = row["version"]
    experiment.allocation_version = row["allocation_version"]
    return experiment


def saved_group_from_row(row: asyncpg.Record) -> experiment_pb2.SavedGroup:
    """The proto of one `saved_groups` row."""
    values = struct_pb2.ListValue()
    values.extend(_json(row["members"]))
    return experiment_pb2.SavedGroup(key=row["key"], values=values.values)


class ConfigStore:
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
