"""The one storage codec of configuration rows: what the repository writes, every reader reads."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import json_format, struct_pb2

from verdict.v1 import experiment_pb2
from verdict_platform import config_codec


def _experiment() -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": "exp",
            "status": "EXPERIMENT_STATUS_RUNNING",
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True, "payload": {"n": 1}},
                {"key": "v1", "weight": 0.5, "payload": {"model": "m", "t": 0.2}},
            ],
            "targeting": {"country": {"$in": ["FR", "DE"]}},
            "version": "4",
            "allocationVersion": "2",
        },
        experiment_pb2.Experiment(),
    )


def test_an_experiment_round_trips_through_its_row() -> None:
    e = _experiment()
    row = {
        "key": e.key,
        "status": config_codec.STATUS_COLUMN[e.status],
        "spec": config_codec.experiment_spec(e),
        "version": e.version,
        "allocation_version": e.allocation_version,
    }
    assert config_codec.experiment_from_row(row) == e


def test_the_columns_win_over_the_spec() -> None:
    e = _experiment()
    row = {
        "key": "exp",
        "status": "stopped",
        "spec": config_codec.experiment_spec(e),
        "version": 9,
        "allocation_version": 3,
    }
    decoded = config_codec.experiment_from_row(row)
    assert decoded.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED
    assert (decoded.version, decoded.allocation_version) == (9, 3)


def test_unknown_fields_of_a_newer_writer_are_ignored() -> None:
    row = {"spec": '{"key": "exp", "fieldFromTheFuture": 1}'}
    assert config_codec.experiment_from_row(row).key == "exp"


def test_a_saved_group_keeps_its_value_types_and_time() -> None:
    values = struct_pb2.ListValue()
    values.extend(["a", 2, True])
    group = experiment_pb2.SavedGroup(key="vip", values=values.values)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    row = {"key": "vip", "members": config_codec.saved_group_members(group), "updated_at": at}
    decoded = config_codec.saved_group_from_row(row)
    assert [json_format.MessageToDict(v) for v in decoded.values] == ["a", 2, True]
    assert decoded.update_time.ToDatetime(tzinfo=UTC) == at


def test_a_metric_round_trips_and_its_key_column_wins() -> None:
    metric = experiment_pb2.Metric(key="m", type=experiment_pb2.METRIC_TYPE_MEAN)
    row = {"key": "m2", "spec": config_codec.metric_spec(metric)}
    decoded = config_codec.metric_from_row(row)
    assert decoded.type == experiment_pb2.METRIC_TYPE_MEAN and decoded.key == "m2"


def test_every_status_has_one_column_text() -> None:
    numbers = set(experiment_pb2.ExperimentStatus.values()) - {0}
    assert set(config_codec.STATUS_COLUMN) == numbers
    assert len(set(config_codec.STATUS_COLUMN.values())) == len(numbers)
