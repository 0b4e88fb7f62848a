"""Read-only PostgreSQL adapter: experiments and metric definitions as analysis sees them.

Analysis reads the configuration tables directly (the storage contract of ExperimentService's
repository: `spec` is `MessageToDict` of the proto, the columns win over the spec), so no
dependency on another process is needed to analyse; stopping goes through ExperimentService.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import asyncpg
from google.protobuf import json_format

from verdict.v1 import experiment_pb2
from verdict_platform.db import unavailable_on_disconnect

_E = experiment_pb2

STATUS = {
    "draft": _E.EXPERIMENT_STATUS_DRAFT,
    "running": _E.EXPERIMENT_STATUS_RUNNING,
    "stopped": _E.EXPERIMENT_STATUS_STOPPED,
    "archived": _E.EXPERIMENT_STATUS_ARCHIVED,
}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class ExperimentCatalog:
    """Experiments and metrics from the configuration tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        """The experiment, or None when unknown."""
        async with unavailable_on_disconnect():
            row = await self._pool.fetchrow(
                "SELECT key, status, spec, version FROM experiments WHERE key = $1", key
            )
        if row is None:
            return None
        experiment = json_format.ParseDict(
            _json(row["spec"]), _E.Experiment(), ignore_unknown_fields=True
        )
        experiment.key = row["key"]
        experiment.status = STATUS[row["status"]]
        experiment.version = row["version"]
        return experiment

    async def metrics(self, keys: Collection[str]) -> dict[str, experiment_pb2.Metric]:
        """The definitions of the metrics named (unknown keys are left out)."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                "SELECT key, spec FROM metrics WHERE key = ANY($1::text[])", list(keys)
            )
        out: dict[str, experiment_pb2.Metric] = {}
        for row in rows:
            metric = json_format.ParseDict(
                _json(row["spec"]), _E.Metric(), ignore_unknown_fields=True
            )
            metric.key = row["key"]
            out[row["key"]] = metric
        return out

    async def running_keys(self) -> list[str]:
        """Keys of the running experiments."""
        async with unavailable_on_disconnect():
            rows = await self._pool.fetch(
                "SELECT key FROM experiments WHERE status = 'running' ORDER BY key"
            )
        return [row["key"] for row in rows]
