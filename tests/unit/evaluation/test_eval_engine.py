"""The assignment engine: order of checks, reasons, layers, weights, schedule, forcing."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from verdict.evaluation import (
    Assignment,
    Evaluator,
    ExperimentConfig,
    LayerConfig,
    Reason,
    VariantConfig,
    choose_variation,
    get_bucket_ranges,
    hash,
)

UNITS = [f"unit-{i}" for i in range(100_000)]


def variants(*weights: float) -> tuple[VariantConfig, ...]:
    return tuple(
        VariantConfig(f"v{i}", w, f'{{"arm": {i}}}', is_control=i == 0)
        for i, w in enumerate(weights)
    )


def experiment(key: str = "exp", **overrides: Any) -> ExperimentConfig:
    overrides.setdefault("variants", variants(0.5, 0.5))
    return ExperimentConfig(key=key, **overrides)


def one(evaluator: Evaluator, unit: str, attributes: Any = None, **kw: Any) -> Assignment:
    results = evaluator.assign(unit, attributes, **kw)
    assert len(results) == 1
    return results[0]


def test_eval_layer_ranges_are_mutually_exclusive_over_100k_units() -> None:
    evaluator = Evaluator(
        [
            experiment("left", layer=LayerConfig("checkout", 0.0, 0.5)),
            experiment("right", layer=LayerConfig("checkout", 0.5, 1.0)),
        ]
    )
    in_left = in_right = 0
    for unit in UNITS:
        left, right = evaluator.assign(unit, {})
        assert not (left.in_experiment and right.in_experiment), unit
        assert left.in_experiment or left.reason is Reason.NOT_IN_LAYER
        assert right.in_experiment or right.reason is Reason.NOT_IN_LAYER
        in_left += left.in_experiment
        in_right += right.in_experiment
    assert in_left + in_right == len(UNITS)  # the two ranges cover the whole layer
    assert abs(in_left - len(UNITS) / 2) < 3 * math.sqrt(len(UNITS) / 4)


def test_eval_weights_split_within_three_standard_errors_over_100k_units() -> None:
    weights = (0.2, 0.3, 0.5)
    evaluator = Evaluator([experiment(variants=variants(*weights))])
    counts = Counter(one(evaluator, unit).variant_index for unit in UNITS)
    assert set(counts) == {0, 1, 2}
    n = len(UNITS)
    for index, weight in enumerate(weights):
        standard_error = math.sqrt(n * weight * (1 - weight))
        assert abs(counts[index] - n * weight) < 3 * standard_error, (index, counts)


def test_eval_coverage_admits_its_share_and_reports_the_bucket() -> None:
    evaluator = Evaluator([experiment(coverage=0.4)])
    results = [one(evaluator, unit) for unit in UNITS[:20_000]]
    inside = [r for r in results if r.in_experiment]
    outside = [r for r in results if not r.in_experiment]
    assert abs(len(inside) / len(results) - 0.4) < 0.015
    assert all(r.reason is Reason.NOT_IN_TRAFFIC and r.bucket is not None for r in outside)
    assert all(r.variant_key is None and r.variant_index == -1 for r in outside)
    assert all(r.payload_json is None for r in outside)


def test_eval_assignment_agrees_with_the_spec_functions() -> None:
    config = experiment(seed="s-1", coverage=0.7, variants=variants(0.2, 0.3, 0.5))
    evaluator = Evaluator([config])
    ranges = get_bucket_ranges(3, 0.7, [0.2, 0.3, 0.5])
    for unit in UNITS[:5000]:
        n = hash("s-1", unit, 2)
        assert n is not None
        result = one(evaluator, unit)
        assert result.bucket == n
        assert result.variant_index == choose_variation(n, ranges)


def test_eval_assignment_is_deterministic_across_evaluators_and_calls() -> None:
    configs = [experiment("a"), experiment("b", variants=variants(0.1, 0.9), hash_version=1)]
    first, second = Evaluator(configs), Evaluator(list(configs))
    for unit in UNITS[:3000]:
        assert first.assign(unit, {}) == second.assign(unit, {}) == first.assign(unit, {})


def test_eval_seed_defaults_to_key_and_changes_buckets() -> None:
    by_key = Evaluator([experiment("exp")])
    by_seed = Evaluator([experiment("exp", seed="exp")])
    other_seed = Evaluator([experiment("exp", seed="other")])
    buckets = [one(by_key, u).bucket for u in UNITS[:200]]
    assert buckets == [one(by_seed, u).bucket for u in UNITS[:200]]
    assert buckets != [one(other_seed, u).bucket for u in UNITS[:200]]


def test_eval_schedule_bounds_are_start_inclusive_end_exclusive() -> None:
    evaluator = Evaluator([experiment(start_time=1000.0, end_time=2000.0)])
    reasons = [one(evaluator, "u", now=t).reason for t in (999.9, 1000.0, 1999.9, 2000.0)]
    assert reasons == [Reason.NOT_RUNNING, Reason.ASSIGNED, Reason.ASSIGNED, Reason.NOT_RUNNING]


def test_eval_stopped_experiment_is_not_running_and_not_listed_by_default() -> None:
    evaluator = Evaluator([experiment("on"), experiment("off", running=False, forced={"u": "v1"})])
    assert [r.experiment_key for r in evaluator.assign("u", {})] == ["on"]
    stopped = one(evaluator, "u", keys=["off"])
    assert stopped.reason is Reason.NOT_RUNNING and not stopped.in_experiment


def test_eval_unknown_keys_answer_in_request_order() -> None:
    evaluator = Evaluator([experiment("a"), experiment("b")])
    results = evaluator.assign("u", {}, keys=["b", "nope", "a", "b"])
    assert [(r.experiment_key, r.reason) for r in results] == [
        ("b", Reason.ASSIGNED),
        ("nope", Reason.UNKNOWN_KEY),
        ("a", Reason.ASSIGNED),
        ("b", Reason.ASSIGNED),
    ]
    unknown = results[1]
    assert unknown.variant_key is None and unknown.bucket is None and not unknown.in_experiment


def test_eval_forced_variant_wins_over_targeting_layer_and_traffic() -> None:
    config = experiment(
        coverage=0.0,
        condition={"country": "FR"},
        layer=LayerConfig("l", 0.0, 0.0),
        forced={"qa-user": "v1", "acme": "v0"},
        hash_attribute="org_id",
    )
    evaluator = Evaluator([config])
    by_unit = one(evaluator, "qa-user", {"country": "US", "org_id": "other"})
    assert (by_unit.reason, by_unit.variant_key, by_unit.variant_index) == (Reason.FORCED, "v1", 1)
    assert by_unit.in_experiment and by_unit.payload_json == '{"arm": 1}'
    by_hash_value = one(evaluator, "someone", {"country": "US", "org_id": "acme"})
    assert (by_hash_value.reason, by_hash_value.variant_key) == (Reason.FORCED, "v0")
    assert one(evaluator, "someone", {"country": "US", "org_id": "x"}).reason is not Reason.FORCED


def test_eval_hash_attribute_groups_units_of_one_org() -> None:
    evaluator = Evaluator([experiment(hash_attribute="org_id", seed="s")])
    results = [one(evaluator, unit, {"org_id": "acme"}) for unit in UNITS[:500]]
    assert {(r.variant_key, r.bucket) for r in results} == {
        (results[0].variant_key, hash("s", "acme", 2))
    }
    assert one(evaluator, "u", {"org_id": 42}).bucket == hash("s", "42", 2)


@pytest.mark.parametrize("value", [None, "", 0, False, [], {"a": 1}], ids=repr)
def test_eval_unusable_hash_attribute_value_is_reported(value: Any) -> None:
    evaluator = Evaluator([experiment(hash_attribute="org_id")])
    assert one(evaluator, "u", {"org_id": value}).reason is Reason.NO_HASH_ATTRIBUTE
    assert one(evaluator, "u", {}).reason is Reason.NO_HASH_ATTRIBUTE


def test_eval_unit_id_is_the_id_attribute_unless_attributes_carry_one() -> None:
    evaluator = Evaluator([experiment(seed="s", condition={"id": {"$in": ["u1", "override"]}})])
    plain = one(evaluator, "u1", {"country": "FR"})
    assert plain.reason is Reason.ASSIGNED and plain.bucket == hash("s", "u1", 2)
    overridden = one(evaluator, "u1", {"id": "override"})
    assert overridden.bucket == hash("s", "override", 2)
    assert one(evaluator, "u2", None).reason is Reason.NOT_TARGETED


def test_eval_targeting_uses_saved_groups_and_reports_not_targeted() -> None:
    config = experiment(condition={"id": {"$inGroup": "beta"}, "app": {"$vgte": "2.1.0"}})
    evaluator = Evaluator([config], saved_groups={"beta": ["u1", "u2"]})
    assert one(evaluator, "u1", {"app": "2.10.0"}).reason is Reason.ASSIGNED
    assert one(evaluator, "u1", {"app": "2.0.9"}).reason is Reason.NOT_TARGETED
    assert one(evaluator, "u3", {"app": "3.0.0"}).reason is Reason.NOT_TARGETED


def test_eval_engine_never_produces_sticky() -> None:
    evaluator = Evaluator([experiment(coverage=0.5, forced={"f": "v0"})])
    reasons = {r.reason for unit in [*UNITS[:2000], "f"] for r in evaluator.assign(unit, {})}
    assert reasons == {Reason.ASSIGNED, Reason.NOT_IN_TRAFFIC, Reason.FORCED}
    assert Reason.STICKY.name == "STICKY"


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExperimentConfig("e", ()),
        lambda: ExperimentConfig("e", (*variants(0.5, 0.5), VariantConfig("v0", 0.0))),
        lambda: experiment(forced={"u": "nope"}),
        lambda: experiment(hash_version=3),
        lambda: experiment(start_time=2.0, end_time=1.0),
        lambda: LayerConfig("l", 0.6, 0.4),
        lambda: Evaluator([experiment("a"), experiment("a")]),
        lambda: Evaluator([experiment(condition={"$or": {"a": 1}})]),
    ],
    ids=["no-variants", "duplicate-variant", "forced-unknown", "hash-version", "schedule",
         "layer-range", "duplicate-experiment", "malformed-condition"],
)  # fmt: skip
def test_eval_invalid_configuration_is_rejected(build: Any) -> None:
    with pytest.raises(ValueError):
        build()
