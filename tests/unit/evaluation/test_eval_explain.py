"""`Evaluator.explain`: each answer with why, for debugging (the proto's Explanation).
That explanations answer what `assign` answers, on random configurations, is in
test_eval_native.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from verdict.evaluation import (
    Evaluator,
    ExperimentConfig,
    Explanation,
    FilterConfig,
    LayerConfig,
    Reason,
    VariantConfig,
    hash,
)

NOW = 1e9
VARIANTS = (VariantConfig("a", 0.5, is_control=True), VariantConfig("b", 0.5))


def explain_one(
    config: ExperimentConfig,
    unit: str = "u-1",
    attributes: dict[str, Any] | None = None,
    forced: dict[str, str] | None = None,
) -> Explanation:
    evaluator = Evaluator([config])
    ((result, why),) = evaluator.explain(unit, attributes, [config.key], NOW, forced)
    assert [result] == evaluator.assign(unit, attributes, [config.key], NOW, forced)
    return why


def test_a_unit_out_of_coverage_gets_its_bucket_and_the_covered_ranges() -> None:
    config = ExperimentConfig("exp", VARIANTS, coverage=0.5)
    unit = next(f"u-{i}" for i in range(100) if (hash("exp", f"u-{i}", 2) or 0) % 0.5 >= 0.25)
    why = explain_one(config, unit)
    bucket = hash("exp", unit, 2)
    assert why == Explanation(
        "id",
        unit,
        bucket,
        None,
        "",
        f"bucket {bucket:g} is outside the covered ranges [0, 0.25), [0.5, 0.75)",
    )


def test_an_assigned_unit_names_its_variant_range() -> None:
    why = explain_one(ExperimentConfig("exp", VARIANTS, ranges=((0.0, 0.0), (0.0, 1.0))))
    assert why.detail == f"bucket {why.bucket:g} is in variant 'b''s range [0, 1)"


def test_failed_condition_is_the_first_top_level_entry_that_fails() -> None:
    condition = {"plan": "pro", "country": {"$in": ["FR", "DE"]}, "age": {"$gt": 18}}
    config = ExperimentConfig("exp", VARIANTS, condition=condition)
    why = explain_one(config, attributes={"plan": "pro", "country": "US", "age": 10})
    assert json.loads(why.failed_condition) == {"country": {"$in": ["FR", "DE"]}}
    assert why.bucket is None and "targeting condition fails" in why.detail


def test_the_fallback_attribute_is_reported_as_the_attribute_hashed() -> None:
    config = ExperimentConfig("exp", VARIANTS, hash_attribute="user_id", fallback_attribute="dev")
    why = explain_one(config, attributes={"dev": "d-9"})
    assert (why.hash_attribute, why.hash_value) == ("dev", "d-9")
    missing = explain_one(config)
    assert (missing.hash_attribute, missing.hash_value) == ("user_id", "")
    assert missing.detail == "the unit has no usable value for 'user_id' nor for 'dev'"


@pytest.mark.parametrize(
    ("changes", "kw", "detail"),
    [
        ({"running": False}, {}, "the experiment is not running"),
        ({"start_time": 2e9}, {}, "time 1e+09 is outside the schedule [2e+09, inf)"),
        ({"qa_mode": True}, {}, "the experiment is in QA mode and nothing forces a variant of it"),
        ({}, {"forced": {"exp": "b"}}, "the request forces variant 'b'"),
        ({"forced": {"u-1": "a"}}, {}, "the QA allow-list forces variant 'a'"),
        ({"filters": [FilterConfig("s", ())]}, {}, "filter 0: hash "),
        ({"filters": [FilterConfig("s", ((0, 1),), "org")]}, {}, "filter 0 has no value for 'org'"),
    ],
)
def test_each_step_says_why(changes: dict[str, Any], kw: dict[str, Any], detail: str) -> None:
    why = explain_one(ExperimentConfig("exp", VARIANTS, **changes), **kw)
    assert why.detail.startswith(detail)


def test_layer_position_is_reported() -> None:
    why = explain_one(ExperimentConfig("exp", VARIANTS, layer=LayerConfig("l", 0.0, 0.0)))
    assert why.layer_position == hash("__l", "u-1", 1)
    assert why.detail.startswith(f"layer position {why.layer_position:g} is outside")


def test_holdout_and_unknown_key_are_explained() -> None:
    holdout = ExperimentConfig(
        "hold", VARIANTS, holdout=True, ranges=((0.0, 1.0), (1.0, 1.0))
    )  # everyone in its control
    evaluator = Evaluator([holdout, ExperimentConfig("exp", VARIANTS, holdout_key="hold")])
    (held, why), (unknown, nothing) = evaluator.explain("u", keys=["exp", "nope"], now=NOW)
    assert held.reason is Reason.HELD_OUT
    assert why.detail == "the unit is in the control group of holdout 'hold'"
    assert unknown.reason is Reason.UNKNOWN_KEY
    assert nothing == Explanation("", "", None, None, "", "no experiment has key 'nope'")
