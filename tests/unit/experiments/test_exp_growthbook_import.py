"""The GrowthBook converter (pure): what is imported, how each unit keeps its bucket, what is
skipped and why, and the JSON paths named when the input has the wrong shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format

from verdict.evaluation import get_bucket_ranges
from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.growthbook_import import (
    MAX_PAYLOAD_BYTES,
    Conversion,
    convert,
    parse_payload,
)
from verdict_platform.errors import InvalidArgument


def _rule(**fields: Any) -> dict[str, Any]:
    return {"key": "checkout-cta", "variations": ["blue", "green"], **fields}


def _features(*rules: dict[str, Any], feature: str = "cta-color") -> dict[str, Any]:
    return {"features": {feature: {"defaultValue": "blue", "rules": list(rules)}}}


def _one(conversion: Conversion) -> experiment_pb2.Experiment:
    (experiment,) = conversion.experiments
    return experiment


def _descriptions(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    assert {v.field for v in error.value.violations} == {"payload_json"}
    return [v.description for v in error.value.violations]


def test_an_experiment_rule_becomes_a_draft_that_hashes_like_growthbook() -> None:
    rule = _rule(
        weights=[0.25, 0.75],
        coverage=0.8,
        hashAttribute="user_id",
        fallbackAttribute="device_id",
        condition={"country": {"$in": ["FR", "DE"]}},
        namespace=["pricing", 0.2, 0.7],
        meta=[{"key": "control", "name": "Blue"}, {"key": "green", "name": "Green"}],
        name="CTA colour",
        phase="2",
    )
    conversion = convert(_features(rule))
    got = json_format.MessageToDict(_one(conversion), preserving_proto_field_name=True)
    assert got.pop("description") == (
        "Imported from GrowthBook: features.cta-color.rules[0] (key 'checkout-cta', phase 2)."
    )
    assert got == {
        "key": "checkout-cta",
        "name": "CTA colour",
        "seed": "checkout-cta",  # GrowthBook's key, written out: Verdict's default is its own key
        "hash_version": 1,  # GrowthBook's default, kept
        "hash_attribute": "user_id",
        "fallback_attribute": "device_id",
        "coverage": 0.8,
        "targeting": {"country": {"$in": ["FR", "DE"]}},
        "layer": {"id": "pricing", "start": 0.2, "end": 0.7},
        "variants": [
            {"key": "control", "name": "Blue", "weight": 0.25, "is_control": True,
             "payload": {"value": "blue"}},
            {"key": "green", "name": "Green", "weight": 0.75, "payload": {"value": "green"}},
        ],
    }  # fmt: skip
    assert conversion.skipped == () and conversion.origins == {
        "checkout-cta": "features.cta-color.rules[0]"
    }


def test_defaults_are_growthbooks_and_object_values_are_payloads_as_they_are() -> None:
    rule = {"variations": [{"model": "m0"}, {"model": "m1"}, {"model": "m2"}], "seed": "s1"}
    experiment = _one(convert({"my-feature": {"rules": [rule]}}))  # a bare features object
    assert experiment.key == "my-feature"  # no key: the feature's, as in GrowthBook
    assert (experiment.seed, experiment.hash_version, experiment.hash_attribute) == ("s1", 1, "id")
    assert [v.key for v in experiment.variants] == ["v0", "v1", "v2"]
    assert [v.is_control for v in experiment.variants] == [True, False, False]
    assert [v.weight for v in experiment.variants] == [1 / 3] * 3
    assert experiment.HasField("coverage") and experiment.coverage == 1.0
    assert [json_format.MessageToDict(v.payload) for v in experiment.variants] == [
        {"model": "m0"},
        {"model": "m1"},
        {"model": "m2"},
    ]
    assert not experiment.HasField("layer") and not experiment.HasField("targeting")


def test_ranges_filters_and_hash_version_2_are_kept_and_filters_hash_id_by_default() -> None:
    rule = _rule(
        hashVersion=2,
        ranges=[[0.0, 0.3], [0.5, 0.9]],
        coverage=0.1,  # GrowthBook ignores coverage and weights when ranges are set
        weights=[0.9, 0.1],
        filters=[{"seed": "other", "ranges": [[0, 0.5]]},
                 {"seed": "s", "attribute": "anon", "hashVersion": 1, "ranges": [[0.1, 0.2]]}],
    )  # fmt: skip
    experiment = _one(convert(_features(rule)))
    assert experiment.hash_version == 2 and not experiment.HasField("coverage")
    assert [(v.range.start, v.range.end) for v in experiment.variants] == [(0, 0.3), (0.5, 0.9)]
    assert [v.weight for v in experiment.variants] == pytest.approx([3 / 7, 4 / 7])
    assert [json_format.MessageToDict(f) for f in experiment.filters] == [
        {"seed": "other", "attribute": "id", "hashVersion": 2,
         "ranges": [{"end": 0.5}]},  # start 0: the proto default
        {"seed": "s", "attribute": "anon", "hashVersion": 1,
         "ranges": [{"start": 0.1, "end": 0.2}]},
    ]  # fmt: skip


def test_weights_summing_nearly_to_one_become_growthbooks_own_ranges() -> None:
    conversion = convert(_features(_rule(weights=[0.4, 0.5999], coverage=0.5)))
    experiment = _one(conversion)
    ranges = [(v.range.start, v.range.end) for v in experiment.variants]
    assert ranges == [tuple(r) for r in get_bucket_ranges(2, 0.5, [0.4, 0.5999])]
    assert sum(v.weight for v in experiment.variants) == pytest.approx(1.0)
    assert conversion.skipped[0].startswith("features.cta-color.rules[0].weights: sum to")


def test_weights_growthbook_ignores_give_an_equal_split_and_say_so() -> None:
    conversion = convert(_features(_rule(weights=[0.7, 0.6])))
    assert [v.weight for v in _one(conversion).variants] == [0.5, 0.5]
    assert "the split is equal" in conversion.skipped[0]


def test_only_the_saved_groups_the_experiments_name_are_imported() -> None:
    payload = {
        **_features(_rule(condition={"id": {"$inGroup": "beta"}})),
        "savedGroups": {"beta": ["u1", 2, True], "unused": ["x"]},
    }
    conversion = convert(payload)
    (group,) = conversion.saved_groups
    assert group.key == "beta"
    assert json_format.MessageToDict(group)["values"] == ["u1", 2.0, True]
    known = convert(_features(_rule(condition={"id": {"$notInGroup": "vip"}})), {"vip"})
    assert known.saved_groups == () and len(known.experiments) == 1


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"force": True}, "a force rule"),
        ({"force": 1, "coverage": 0.5, "hashAttribute": "id"}, "a force rule"),
        ({"condition": {"a": 1}}, "a rule without variations"),
        (_rule(parentConditions=[{"id": "f", "condition": {"value": True}}]), "prerequisites"),
        (_rule(variations=["only"]), "1 variation(s)"),
        (_rule(hashVersion=3), "hashVersion 3 is unknown"),
        (_rule(condition={"country": {"$regx": "F"}}), "Verdict cannot evaluate its condition"),
        (_rule(condition={"id": {"$inGroup": "nowhere"}}), "saved group 'nowhere'"),
        (_rule(meta=[{"passthrough": True}, {}]), "passthrough variations"),
        (_rule(namespace=["ns", 0.5, 0.5]), "namespace range [0.5, 0.5) enrols nobody"),
        (_rule(ranges=[[0, 0.6], [0.5, 1]]), "ranges overlap"),
        (_rule(ranges=[[0, 1]]), "ranges has 1 entries for 2 variations"),
        (_rule(filters=[{"seed": "s", "ranges": [[0, 1]], "hashVersion": 7}]), "a filter's"),
    ],
)
def test_what_cannot_be_imported_faithfully_is_skipped_with_its_path(
    rule: dict[str, Any], reason: str
) -> None:
    conversion = convert(_features({"key": "first", "variations": [0, 1]}, rule))
    assert [e.key for e in conversion.experiments] == ["first"]
    (skipped,) = conversion.skipped
    assert skipped.startswith("features.cta-color.rules[1]: ")
    assert reason in skipped


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"force": 1}, "a forced variation"),
        ({"urlPatterns": [{"type": "simple", "include": True, "pattern": "/x"}]}, "URL"),
        ({"url": "^/checkout"}, "URL"),
        ({"groups": ["beta"]}, "user groups"),
    ],
)
def test_auto_experiments_with_what_verdict_has_no_counterpart_for_are_skipped(
    fields: dict[str, Any], reason: str
) -> None:
    conversion = convert({"experiments": [{"key": "e", "variations": [0, 1], **fields}]})
    assert conversion.experiments == ()
    assert conversion.skipped[0].startswith("experiments[0]: ") and reason in conversion.skipped[0]


def test_a_key_that_is_no_slug_is_derived_and_the_seed_keeps_the_buckets() -> None:
    conversion = convert(_features(_rule(key="Checkout CTA!"), feature="cta"))
    experiment = _one(conversion)
    assert (experiment.key, experiment.seed) == ("cta", "Checkout CTA!")
    assert "imported as 'cta'" in conversion.skipped[0]


def test_one_experiment_in_two_features_keeps_one_seed_under_two_keys() -> None:
    payload = {
        "features": {
            "color": {"rules": [_rule()]},
            "copy": {"rules": [_rule(variations=["Buy", "Order"])]},
        }
    }
    conversion = convert(payload)
    assert [(e.key, e.seed) for e in conversion.experiments] == [
        ("checkout-cta", "checkout-cta"),
        ("checkout-cta-copy", "checkout-cta"),
    ]
    assert "used by an earlier experiment" in conversion.skipped[0]


def test_meta_keys_that_are_not_distinct_slugs_give_v0_v1() -> None:
    conversion = convert(_features(_rule(meta=[{"key": "Control"}, {"key": "b"}])))
    assert [v.key for v in _one(conversion).variants] == ["v0", "v1"]
    assert conversion.skipped[0].startswith("features.cta-color.rules[0].meta: ")


def test_a_two_way_holdout_covers_the_rules_after_it() -> None:
    holdout = _rule(key="holdout", meta=[{}, {"passthrough": True}], ranges=[[0, 0.1], [0.1, 1]])
    conversion = convert(_features(_rule(key="before"), holdout, _rule(key="after")))
    flags = [(e.key, e.holdout, e.holdout_key) for e in conversion.experiments]
    assert flags == [("before", False, ""), ("holdout", True, ""), ("after", False, "holdout")]


def test_growthbook_experiments_that_enrol_nobody_are_marked_not_startable() -> None:
    conversion = convert({
        "experiments": [
            {"key": "inactive", "variations": [0, 1], "active": False},
            {"key": "stopped", "variations": [0, 1], "status": "stopped"},
            {"key": "draft", "variations": [0, 1], "status": "draft"},
            {"key": "no-traffic", "variations": [0, 1], "coverage": 0},
            {"key": "running", "variations": [0, 1], "status": "running"},
        ]
    })  # fmt: skip
    assert len(conversion.experiments) == 5
    assert conversion.not_startable == {"inactive", "stopped", "draft", "no-traffic"}


def test_sticky_bucketing_turned_off_drops_the_fallback_attribute() -> None:
    rule = _rule(fallbackAttribute="device_id", disableStickyBucketing=True)
    conversion = convert(_features(rule))
    assert _one(conversion).fallback_attribute == ""
    assert "disableStickyBucketing" in conversion.skipped[0]


def test_wrong_types_are_refused_whole_naming_every_json_path() -> None:
    payload = {
        "features": {
            "ok": {"rules": [_rule(key="fine")]},
            "bad": {"rules": [_rule(coverage="0.5", weights=[0.5, "x"], namespace=["n", 0])]},
            "worse": {"rules": {"not": "a list"}},
        },
        "savedGroups": {"g": [1, {"no": "objects"}]},
    }
    with pytest.raises(InvalidArgument) as error:
        convert(payload)
    assert sorted(_descriptions(error)) == [
        "features.bad.rules[0].coverage: must be a finite number, not a string",
        "features.bad.rules[0].namespace: must be [id, start, end]: a string, two numbers",
        "features.bad.rules[0].weights[1]: must be a finite number, not a string",
        "features.worse.rules: must be an array, not an object",
        "savedGroups.g[1]: must be a string or a number, not an object",
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "(root): must be a JSON object, not an array"),
        ({"features": []}, "features: must be an object, not an array"),
        ({"experiments": [{"variations": [0, 1]}]}, "experiments[0].key: is required"),
        ({"f": {"rules": [{"variations": "ab"}]}}, "f.rules[0].variations: must be an array"),
        ({"features": {"a.b": {"rules": [1]}}}, 'features["a.b"].rules[0]: must be an object'),
        ({"encryptedFeatures": "abc"}, "encryptedFeatures: encrypted payloads cannot"),
    ],
)
def test_the_shape_of_the_payload_is_checked(payload: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        convert(payload)
    assert any(d.startswith(message) for d in _descriptions(error)), _descriptions(error)


def test_malformed_json_and_oversized_payloads_are_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_payload('{"features": {')
    assert _descriptions(error)[0].startswith("is not valid JSON at line 1 column 15")
    with pytest.raises(InvalidArgument) as error:
        parse_payload('{"x": NaN}')
    assert "NaN is not JSON" in _descriptions(error)[0]
    big = json.dumps({"features": {}, "pad": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(InvalidArgument) as error:
        parse_payload(big)
    assert "at most 4194304 (4 MiB)" in _descriptions(error)[0]
    assert parse_payload(json.dumps({"features": {}})) == {"features": {}}


def test_what_a_create_request_could_not_carry_is_skipped_or_refused() -> None:
    big = {"prompt": "x" * (64 * 1024)}  # a variant payload holds at most 64 KiB
    conversion = convert(_features(_rule(variations=[big, big]), _rule(key="ok", name="é" * 300)))
    assert [e.key for e in conversion.experiments] == ["ok"]
    assert conversion.skipped[0].startswith("features.cta-color.rules[0]: over what Verdict stores")
    assert "experiment.variants[0].payload" in conversion.skipped[0]
    assert len(conversion.experiments[0].name.encode()) <= 256  # names are clipped, not refused
    with pytest.raises(InvalidArgument) as error:
        convert({"savedGroups": {"g": ["ok", "y" * 257]}})
    assert _descriptions(error) == ["savedGroups.g[1]: must be at most 256 bytes, no NUL"]


def test_a_fallback_growthbook_never_uses_is_dropped_with_a_note() -> None:
    for rule in (
        _rule(hashAttribute="id", fallbackAttribute="device_id"),
        _rule(hashAttribute="user_id", fallbackAttribute="user_id"),
    ):
        conversion = convert(_features(rule))
        assert _one(conversion).fallback_attribute == ""
        assert "fallbackAttribute: not imported" in conversion.skipped[0]
    kept = convert(_features(_rule(hashAttribute="user_id", fallbackAttribute="device_id")))
    assert _one(kept).fallback_attribute == "device_id" and kept.skipped == ()
