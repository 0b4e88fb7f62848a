"""From the contract to the engine (`verdict.local`): what the proto's presence bits and new
fields mean for `ExperimentConfig`, integral payload numbers, and `LocalEvaluator` refusing an
`id` attribute other than the unit id as the server does."""

from __future__ import annotations

import json

import pytest
from google.protobuf import struct_pb2

from verdict.evaluation import FilterConfig, Reason
from verdict.local import LocalEvaluator, experiment_config_from_proto, payload_json
from verdict.v1 import assignment_pb2, experiment_pb2


def proto(**changes: object) -> experiment_pb2.Experiment:
    experiment = experiment_pb2.Experiment(
        key="exp",
        status=experiment_pb2.EXPERIMENT_STATUS_RUNNING,
        variants=[
            experiment_pb2.Variant(key="a", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="b", weight=0.5),
        ],
    )
    for name, value in changes.items():
        if isinstance(value, list):
            getattr(experiment, name).extend(value)
        else:
            setattr(experiment, name, value)
    return experiment


def test_absent_coverage_is_everyone_and_an_explicit_one_is_kept() -> None:
    assert experiment_config_from_proto(proto()).coverage == 1.0
    assert experiment_config_from_proto(proto(coverage=0.0)).coverage == 0.0
    assert experiment_config_from_proto(proto(coverage=0.25)).coverage == 0.25


def test_defaults_of_hash_attribute_and_version() -> None:
    config = experiment_config_from_proto(proto())
    assert (config.hash_attribute, config.hash_version) == ("id", 2)
    assert experiment_config_from_proto(proto(hash_version=1)).hash_version == 1


def test_weights_left_unset_map_to_an_equal_split() -> None:
    experiment = proto()
    for variant in experiment.variants:
        variant.weight = 0
    config = experiment_config_from_proto(experiment)
    assert [v.weight for v in config.variants] == [0.0, 0.0]  # get_bucket_ranges splits


def test_variant_ranges_map_when_every_variant_has_one() -> None:
    experiment = proto()
    experiment.variants[0].range.CopyFrom(experiment_pb2.BucketRange(start=0.5, end=1.0))
    with pytest.raises(ValueError, match="some variants have a range"):
        experiment_config_from_proto(experiment)
    experiment.variants[1].range.CopyFrom(experiment_pb2.BucketRange(start=0.0, end=0.0))
    assert experiment_config_from_proto(experiment).ranges == ((0.5, 1.0), (0.0, 0.0))
    assert experiment_config_from_proto(proto()).ranges is None


def test_fallback_filters_holdout_and_qa_mode_map() -> None:
    config = experiment_config_from_proto(
        proto(
            fallback_attribute="device_id",
            filters=[
                experiment_pb2.Filter(
                    seed="s", ranges=[experiment_pb2.BucketRange(start=0.1, end=0.4)]
                ),
                experiment_pb2.Filter(seed="t", attribute="org", hash_version=1),
            ],
            holdout_key="hold",
            qa_mode=True,
        )
    )
    assert config.fallback_attribute == "device_id"
    assert config.filters == (
        FilterConfig("s", ((0.1, 0.4),), None, 2),
        FilterConfig("t", (), "org", 1),
    )
    assert (config.holdout, config.holdout_key, config.qa_mode) == (False, "hold", True)
    plain = experiment_config_from_proto(proto())
    assert (plain.fallback_attribute, plain.filters, plain.holdout_key) == (None, (), None)
    assert experiment_config_from_proto(proto(holdout=True)).holdout is True


def test_payload_json_keeps_integers_integers() -> None:
    payload = struct_pb2.Struct()
    payload.update({"max_tokens": 256, "temperature": 0.2, "big": 2.0**60, "nested": [1, 2.5]})
    assert json.loads(payload_json(payload)) == {
        "max_tokens": 256, "temperature": 0.2, "big": 2.0**60, "nested": [1, 2.5],
    }  # fmt: skip
    assert '"max_tokens":256' in payload_json(payload)
    assert '"nested":[1,2.5]' in payload_json(payload)


async def test_local_evaluator_refuses_an_id_other_than_the_unit_id() -> None:
    local = LocalEvaluator("127.0.0.1:1", "key")
    try:
        local.apply(assignment_pb2.ConfigSnapshot(version=3, experiments=[proto()]))
        assert local.assign("u-1", {"id": "u-1"})[0].reason is Reason.ASSIGNED
        assert local.assign("u-1", {"plan": "pro"})[0].reason is Reason.ASSIGNED
        with pytest.raises(ValueError, match=r"attributes\.id"):
            local.assign("u-1", {"id": "u-2"})
    finally:
        await local.close()
