"""The one mapping between configuration rows and their protos (experiments, metrics, saved
groups): ExperimentService's repository writes with it, the assignment snapshot and the analysis
catalog read with it.

The storage contract: `experiments.spec` and `metrics.spec` are the proto JSON
(`json_format.MessageToDict`, unknown fields ignored on read so that an older reader survives a
newer writer); the `experiments` columns `key`, `status`, `version` and `allocation_version` are
authoritative over what the spec says; `saved_groups.members` is a JSON array of the values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from verdict.v1 import experiment_pb2

STATUS_OF_COLUMN: dict[str, experiment_pb2.ExperimentStatus.ValueType] = {
    "draft": experiment_pb2.EXPERIMENT_STATUS_DRAFT,
    "running": experiment_pb2.EXPERIMENT_STATUS_RUNNING,
    "stopped": experiment_pb2.EXPERIMENT_STATUS_STOPPED,
    "archived": experiment_pb2.EXPERIMENT_STATUS_ARCHIVED,
}
"""The status of each `experiments.status` text."""
STATUS_COLUMN: dict[int, str] = {number: text for text, number in STATUS_OF_COLUMN.items()}
"""`experiments.status` text of each status."""


EXPERIMENT_COLUMNS = "key, status, spec, version, allocation_version"
"""The `experiments` columns `experiment_from_row` reads."""
METRIC_COLUMNS = "key, spec"
SAVED_GROUP_COLUMNS = "key, members, updated_at"


def _json(value: Any) -> Any:
    """A jsonb column's value: asyncpg returns text unless a codec is set."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def experiment_spec(experiment: experiment_pb2.Experiment) -> str:
    """The `experiments.spec` JSON of an experiment (and of `experiment_versions.spec`)."""
    return json.dumps(json_format.MessageToDict(experiment))


def experiment_from_row(row: Mapping[str, Any]) -> experiment_pb2.Experiment:
    """The proto of an `experiments` row: `spec`, with `key`, `status`, `version` and
    `allocation_version` taken from their columns when the row has them."""
    experiment = json_format.ParseDict(
        _json(row["spec"]), experiment_pb2.Experiment(), ignore_unknown_fields=True
    )
    if "key" in row:
        experiment.key = row["key"]
    if "status" in row:
        experiment.status = STATUS_OF_COLUMN[row["status"]]
    if "version" in row:
        experiment.version = row["version"]
    if "allocation_version" in row:
        experiment.allocation_version = row["allocation_version"]
    return experiment


def metric_spec(metric: experiment_pb2.Metric) -> str:
    """The `metrics.spec` JSON of a metric."""
    return json.dumps(json_format.MessageToDict(metric))


def metric_from_row(row: Mapping[str, Any]) -> experiment_pb2.Metric:
    """The proto of a `metrics` row (`spec`, and `key` from its column when present)."""
    metric = json_format.ParseDict(
        _json(row["spec"]), experiment_pb2.Metric(), ignore_unknown_fields=True
    )
    if "key" in row:
        metric.key = row["key"]
    return metric


def saved_group_members(group: experiment_pb2.SavedGroup) -> str:
    """The `saved_groups.members` JSON array of a group's values."""
    return json.dumps([json_format.MessageToDict(value) for value in group.values])


def saved_group_from_row(row: Mapping[str, Any]) -> experiment_pb2.SavedGroup:
    """The proto of a `saved_groups` row (`key`, `members`, and `updated_at` when present)."""
    values = struct_pb2.ListValue()
    values.extend(_json(row["members"]))
    group = experiment_pb2.SavedGroup(key=row["key"], values=values.values)
    updated: datetime | None = row.get("updated_at")
    if updated is not None:
        group.update_time.FromDatetime(updated)
    return group
