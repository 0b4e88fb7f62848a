"""The steps beyond the hot path: fallback attribute, filters, explicit ranges, holdouts, QA mode
and the request's forced variations, on both paths (the accelerator calls back into Python for
them; explicit ranges it reads natively). Expectations marked "GrowthBook" are cases of its
cross-SDK `cases.json` ("run" and "stickyBucket" sections), with GrowthBook's defaults written
out (hash version 1, the feature key as the experiment key)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from verdict.evaluation import (
    Evaluator,
    ExperimentConfig,
    FilterConfig,
    LayerConfig,
    Reason,
    VariantConfig,
    hash,
    hashed_by,
    identity_problem,
)

PATHS = pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
NOW = 1e9


def variants(n: int = 2, weights: list[float] | None = None) -> tuple[VariantConfig, ...]:
    weights = weights or [1 / n] * n
    return tuple(
        VariantConfig(f"{i}", weights[i], f'{{"arm": {i}}}', is_control=i == 0) for i in range(n)
    )


def experiment(key: str = "exp", **changes: Any) -> ExperimentConfig:
    changes.setdefault("variants", variants())
    return ExperimentConfig(key=key, **changes)


def one(evaluator: Evaluator, unit: str, attributes: dict[str, Any] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    (result,) = evaluator.assign(unit, attributes, now=NOW, **kw)
    return result


# -- fallback attribute ---------------------------------------------------------------------------


@PATHS
def test_fallback_attribute_is_hashed_when_the_hash_attribute_has_no_value(native: bool) -> None:
    """GrowthBook stickyBucket "use fallbackAttribute when missing hashAttribute"."""
    config = experiment(
        "feature", variants=variants(4), hash_version=1, fallback_attribute="anonymousId"
    )
    result = one(Evaluator([config], native=native), "", {"anonymousId": "123"})
    assert (result.reason, result.variant_index, result.bucket) == (Reason.ASSIGNED, 3, 0.863)
    assert hashed_by(config, {"id": "", "anonymousId": "123"}) == ("anonymousId", "123")


@PATHS
def test_fallback_attribute_with_growthbook_weights_and_condition(native: bool) -> None:
    """GrowthBook stickyBucket "performs evaluation without sticky bucket" and "upgrades a
    sticky bucket doc..." (the bucket: the engine keeps no sticky documents)."""
    config = experiment(
        "feature-exp",
        variants=variants(3, [0.3334, 0.3333, 0.3333]),
        seed="feature-exp",
        hash_attribute="user_id",
        fallback_attribute="deviceId",
        condition={"country": "USA"},
    )
    evaluator = Evaluator([config], native=native)
    by_device = one(evaluator, "d", {"deviceId": "d123", "country": "USA"})
    assert (by_device.variant_index, by_device.bucket) == (1, 0.6468)
    by_user = one(evaluator, "d", {"user_id": "i123", "deviceId": "d123", "country": "USA"})
    assert (by_user.variant_index, by_user.bucket) == (2, 0.9943)
    assert hashed_by(config, {"user_id": "i123", "deviceId": "d"}) == ("user_id", "i123")


@PATHS
def test_without_either_attribute_the_unit_has_no_hash_attribute(native: bool) -> None:
    config = experiment(hash_attribute="user_id", fallback_attribute="device_id")
    evaluator = Evaluator([config], native=native)
    for attributes in ({}, {"user_id": "", "device_id": 0}, {"user_id": None, "device_id": []}):
        assert one(evaluator, "u", attributes).reason is Reason.NO_HASH_ATTRIBUTE
        assert hashed_by(config, attributes) is None


@PATHS
def test_the_allow_list_and_the_layer_use_the_value_hashed(native: bool) -> None:
    config = experiment(
        hash_attribute="user_id",
        fallback_attribute="device_id",
        forced={"dev-qa": "1"},
        layer=LayerConfig("l", 0.0, 0.5),
    )
    evaluator = Evaluator([config], native=native)
    assert one(evaluator, "u", {"device_id": "dev-qa"}).reason is Reason.FORCED
    assert one(evaluator, "u", {"user_id": "x", "device_id": "dev-qa"}).reason is not Reason.FORCED
    for i in range(200):
        position = hash("__l", f"dev-{i}", 1)
        assert position is not None
        result = one(evaluator, "u", {"device_id": f"dev-{i}"})
        assert (result.reason is Reason.NOT_IN_LAYER) == (position >= 0.5)


def test_hashed_by_reads_the_unit_id_for_id() -> None:
    config = experiment()
    assert hashed_by(config, {}, unit_id="u-1") == ("id", "u-1")
    assert hashed_by(config, {"id": "u-2"}, unit_id="u-1") == ("id", "u-2")
    assert hashed_by(experiment(hash_attribute="org"), {"org": 42}) == ("org", "42")


# -- filters --------------------------------------------------------------------------------------

GROWTHBOOK_FILTERS = (
    FilterConfig("seed", ((0.0, 0.1), (0.2, 0.4)), attribute="id"),
    FilterConfig("seed", ((0.8, 1.0),), attribute="anonId"),
)


@PATHS
def test_filters_growthbook_included_and_excluded(native: bool) -> None:
    """GrowthBook "Filtered, included" and "Filtered, excluded"."""
    included = experiment("filtered", hash_version=1, filters=GROWTHBOOK_FILTERS)
    excluded = experiment(
        "filtered",
        hash_version=1,
        filters=(GROWTHBOOK_FILTERS[0], FilterConfig("seed", ((0.6, 0.8),), "anonId")),
    )
    attributes = {"id": "1", "anonId": "fsdafsda"}
    result = one(Evaluator([included], native=native), "1", attributes)
    assert (result.reason, result.variant_index) == (Reason.ASSIGNED, 1)
    assert one(Evaluator([excluded], native=native), "1", attributes).reason is (
        Reason.FILTERED_OUT
    )


@PATHS
def test_filters_growthbook_pass_without_a_layer(native: bool) -> None:
    """GrowthBook "Filtered, ignore namespace", less the namespace: GrowthBook ignores a
    namespace when filters are set, Verdict checks both (an import drops the namespace)."""
    config = experiment("filtered", hash_version=1, filters=GROWTHBOOK_FILTERS[:1])
    result = one(Evaluator([config], native=native), "1")
    assert (result.reason, result.variant_index) == (Reason.ASSIGNED, 1)


@PATHS
def test_a_filter_without_attribute_hashes_the_value_the_experiment_hashes(native: bool) -> None:
    keep = ((0.0, 0.3),)
    config = experiment(
        hash_attribute="user_id", fallback_attribute="device_id", filters=[FilterConfig("s", keep)]
    )
    evaluator = Evaluator([config], native=native)
    for i in range(300):
        value = f"d-{i}"
        n = hash("s", value, 2)
        assert n is not None
        result = one(evaluator, "u", {"device_id": value})
        assert (result.reason is Reason.FILTERED_OUT) == (n >= 0.3), value


@PATHS
def test_a_filter_on_a_missing_attribute_filters_out(native: bool) -> None:
    config = experiment(filters=[FilterConfig("s", ((0.0, 1.0),), attribute="org", hash_version=1)])
    evaluator = Evaluator([config], native=native)
    assert one(evaluator, "u", {}).reason is Reason.FILTERED_OUT
    assert one(evaluator, "u", {"org": "acme"}).in_experiment


@PATHS
def test_filters_come_before_the_layer_and_targeting(native: bool) -> None:
    config = experiment(
        filters=[FilterConfig("s", ())],  # no range: nobody passes
        layer=LayerConfig("l", 0.0, 0.0),
        condition={"country": "FR"},
    )
    assert one(Evaluator([config], native=native), "u").reason is Reason.FILTERED_OUT


def test_filter_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="within"):
        FilterConfig("s", ((0.5, 0.2),))
    with pytest.raises(ValueError, match="hash version"):
        FilterConfig("s", ((0.0, 1.0),), hash_version=3)
    assert FilterConfig("s", [[0, 1]], attribute="").attribute is None


# -- explicit ranges ------------------------------------------------------------------------------


@PATHS
@pytest.mark.parametrize(
    ("key", "seed", "version", "ranges", "changes", "expected"),
    [
        ("ranges", "", 1, ((0.99, 1.0), (0.0, 0.99)), {"coverage": 0.01}, 1),
        ("configs", "", 1, ((0.0, 0.1), (0.9, 1.0)), {}, -1),
        ("key", "foo", 2, ((0.0, 0.5), (0.5, 1.0)), {}, 1),
    ],
    ids=["ignore coverage and weights", "partial coverage", "seed and hash version"],
)
def test_explicit_ranges_growthbook_cases(
    native: bool, key: str, seed: str, version: int, ranges: Any, changes: Any, expected: int
) -> None:
    """GrowthBook "Ranges, ignore coverage and weights", "Ranges, partial coverage", "Uses seed
    and hash version"."""
    config = experiment(
        key,
        variants=variants(2, [0.99, 0.01]),
        seed=seed,
        hash_version=version,
        ranges=ranges,
        **changes,
    )
    result = one(Evaluator([config], native=native), "1")
    assert result.variant_index == expected
    assert result.reason is (Reason.ASSIGNED if expected >= 0 else Reason.NOT_IN_TRAFFIC)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (((0.0, 0.5),), "1 ranges for 2 variants"),
        (((0.0, 0.6), (0.5, 1.0)), "overlapping"),
        (((0.0, 0.9), (0.1, 0.2)), "overlapping"),
        (((0.5, 0.4), (0.6, 0.7)), "within"),
        (((0.0, 0.5), (0.5, 1.5)), "within"),
        (((-0.1, 0.5), (0.5, 1.0)), "within"),
        (((float("nan"), 0.5), (0.5, 1.0)), "within"),
    ],
)
def test_explicit_ranges_are_checked(ranges: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        experiment(ranges=ranges)


def test_touching_and_empty_ranges_are_allowed() -> None:
    assert experiment(ranges=[[0.5, 1], [0, 0.5]]).ranges == ((0.5, 1.0), (0.0, 0.5))
    experiment(variants=variants(3), ranges=((0.0, 0.5), (0.2, 0.2), (0.5, 1.0)))


@PATHS
def test_weights_all_zero_split_traffic_equally(native: bool) -> None:
    """GrowthBook's getEqualWeights: weights not summing to 1 (all 0 included) become equal."""
    evaluator = Evaluator([experiment(variants=variants(4, [0.0] * 4))], native=native)
    counts = [0] * 4
    for i in range(4000):
        counts[one(evaluator, f"u-{i}").variant_index] += 1
    assert all(850 < count < 1150 for count in counts), counts


# -- holdouts -------------------------------------------------------------------------------------


def holdout_and_experiment(**holdout_changes: Any) -> list[ExperimentConfig]:
    holdout = experiment(
        "hold",
        variants=(VariantConfig("held", 0.1, is_control=True), VariantConfig("rest", 0.9)),
        holdout=True,
        **holdout_changes,
    )
    return [holdout, experiment("exp", holdout_key="hold")]


@PATHS
def test_units_in_the_holdout_control_are_held_out(native: bool) -> None:
    evaluator = Evaluator(holdout_and_experiment(), native=native)
    held = 0
    for i in range(2000):
        hold, exp = evaluator.assign(f"u-{i}", now=NOW)
        assert (exp.reason is Reason.HELD_OUT) == (hold.variant_key == "held")
        held += exp.reason is Reason.HELD_OUT
    assert 140 < held < 260  # 10 %


@PATHS
@pytest.mark.parametrize(
    "configs",
    [
        holdout_and_experiment()[1:],  # not in the snapshot
        holdout_and_experiment(running=False),
        [replace(holdout_and_experiment()[0], holdout=False), holdout_and_experiment()[1]],
    ],
    ids=["missing", "not running", "not a holdout"],
)
def test_an_experiment_ignores_a_holdout_that_is_not_running_here(
    native: bool, configs: list[ExperimentConfig]
) -> None:
    evaluator = Evaluator(configs, native=native)
    results = [evaluator.assign(f"u-{i}", keys=["exp"], now=NOW)[0] for i in range(500)]
    assert all(r.reason is Reason.ASSIGNED for r in results)


@PATHS
def test_a_holdout_out_of_schedule_holds_nobody_out(native: bool) -> None:
    evaluator = Evaluator(holdout_and_experiment(start_time=2e9), native=native)
    assert all(
        evaluator.assign(f"u-{i}", keys=["exp"], now=NOW)[0].in_experiment for i in range(300)
    )


@PATHS
def test_targeting_is_checked_before_the_holdout(native: bool) -> None:
    configs = holdout_and_experiment(ranges=((0.0, 1.0), (1.0, 1.0)))  # everyone held out
    configs[1] = experiment("exp", holdout_key="hold", condition={"plan": "pro"})
    evaluator = Evaluator(configs, native=native)
    assert evaluator.assign("u", {"plan": "free"}, ["exp"], NOW)[0].reason is Reason.NOT_TARGETED
    assert evaluator.assign("u", {"plan": "pro"}, ["exp"], NOW)[0].reason is Reason.HELD_OUT


def test_holdout_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly two variants"):
        experiment(variants=variants(3), holdout=True)
    with pytest.raises(ValueError, match="cannot itself be held out"):
        experiment(holdout=True, holdout_key="other")
    with pytest.raises(ValueError, match="names itself"):
        experiment("a", holdout_key="a")


# -- QA mode and forced variations ----------------------------------------------------------------


@PATHS
def test_qa_mode_enrols_only_forced_units(native: bool) -> None:
    """GrowthBook "Skips experiments in QA mode", "Works in QA mode if forced in context",
    "Works in QA mode if forced in experiment" (here: the allow-list)."""
    evaluator = Evaluator([experiment(qa_mode=True, forced={"qa-1": "1"})], native=native)
    assert one(evaluator, "1").reason is Reason.QA_MODE
    assert one(evaluator, "qa-1")[1:4] == ("1", 1, Reason.FORCED)
    assert one(evaluator, "1", forced={"exp": "0"})[1:4] == ("0", 0, Reason.FORCED)


@PATHS
def test_forced_variations_of_a_request(native: bool) -> None:
    evaluator = Evaluator(
        [experiment("a"), experiment("b", running=False), experiment("c", variants=variants(3))],
        native=native,
    )
    forced = {"a": "1", "b": "0", "nope": "1"}
    a, b, c = evaluator.assign("u", keys=["a", "b", "c"], now=NOW, forced=forced)
    assert (a.variant_key, a.reason, a.in_experiment, a.payload_json) == (
        "1", Reason.FORCED, True, '{"arm": 1}',
    )  # fmt: skip
    assert b.reason is Reason.NOT_RUNNING
    assert c == evaluator.assign("u", keys=["c"], now=NOW)[0]
    assert evaluator.assign("u", keys=["nope"], now=NOW, forced=forced)[0].reason is (
        Reason.UNKNOWN_KEY
    )
    with pytest.raises(ValueError, match=r"forced_variations\.c.*'7'"):
        evaluator.assign("u", now=NOW, forced={"c": "7"})


@PATHS
def test_forcing_a_holdout_to_its_control_holds_the_unit_out(native: bool) -> None:
    evaluator = Evaluator(holdout_and_experiment(ranges=((0.0, 0.0), (0.0, 1.0))), native=native)
    assert evaluator.assign("u", keys=["exp"], now=NOW)[0].reason is Reason.ASSIGNED
    forced = {"hold": "held"}
    assert evaluator.assign("u", keys=["exp"], now=NOW, forced=forced)[0].reason is (
        Reason.HELD_OUT
    )
    both = {"hold": "held", "exp": "1"}
    assert evaluator.assign("u", keys=["exp"], now=NOW, forced=both)[0].reason is Reason.FORCED


def test_identity_problem_refuses_an_id_other_than_the_unit_id() -> None:
    assert identity_problem("u-1", None) is None
    assert identity_problem("u-1", {"plan": "pro"}) is None
    assert identity_problem("u-1", {"id": "u-1"}) is None
    for other in ("u-2", 1, None, ""):
        problem = identity_problem("1", {"id": other})
        assert problem is not None and problem[0] == "attributes.id"
