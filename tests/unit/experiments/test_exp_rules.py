"""Validation of experiments, metrics and saved groups: pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf import json_format

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.catalog_rules import validate_metric, validate_saved_group
from verdict_assignment.experiments.experiment_rules import validate_experiment, with_defaults

METRICS = {"conversion", "latency"}


def valid_experiment() -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": "prompt-v7",
            "name": "Prompt v7",
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True, "payload": {"model": "a"}},
                {"key": "v7", "weight": 0.5, "payload": {"model": "b", "temperature": 0.2}},
            ],
            "coverage": 1.0,
            "targeting": {"country": {"$in": ["FR", "DE"]}},
            "layer": {"id": "chat", "start": 0.0, "end": 0.5},
            "metrics": [
                {"metricKey": "conversion", "role": "METRIC_ROLE_PRIMARY"},
                {"metricKey": "latency", "role": "METRIC_ROLE_GUARDRAIL"},
            ],
            "analysisPlan": {"alpha": 0.05, "power": 0.8, "minimumDetectableEffect": 0.02},
            "stoppingRules": {"efficacy": True, "guardrailHarm": True, "maxDuration": "86400s"},
            "schedule": {"startTime": "2030-01-01T00:00:00Z", "endTime": "2030-02-01T00:00:00Z"},
            "forcedVariations": {"qa-user": "v7"},
        },
        experiment_pb2.Experiment(),
    )


def fields(experiment: experiment_pb2.Experiment) -> set[str]:
    return {v.field for v in validate_experiment(experiment, METRICS).items}


def test_a_complete_experiment_is_valid() -> None:
    assert fields(valid_experiment()) == set()


def _set(path: str, value: object) -> Callable[[experiment_pb2.Experiment], None]:
    def apply(e: experiment_pb2.Experiment) -> None:
        target: object = e
        *parents, last = path.split(".")
        for part in parents:
            target = getattr(target, part)
        setattr(target, last, value)

    return apply


def _one_variant(e: experiment_pb2.Experiment) -> None:
    del e.variants[1:]
    e.variants[0].weight = 1.0


def _two_controls(e: experiment_pb2.Experiment) -> None:
    e.variants[1].is_control = True


def _no_control(e: experiment_pb2.Experiment) -> None:
    e.variants[0].is_control = False


def _duplicate_keys(e: experiment_pb2.Experiment) -> None:
    e.variants[1].key = "control"


def _weights_not_one(e: experiment_pb2.Experiment) -> None:
    e.variants[1].weight = 0.4


def _weight_out_of_range(e: experiment_pb2.Experiment) -> None:
    e.variants[0].weight = 1.5
    e.variants[1].weight = -0.5


def _bad_targeting(e: experiment_pb2.Experiment) -> None:
    e.targeting.Clear()
    e.targeting.update({"$or": "not a list"})


def _unknown_metric(e: experiment_pb2.Experiment) -> None:
    e.metrics[1].metric_key = "nope"


def _no_role(e: experiment_pb2.Experiment) -> None:
    e.metrics[1].role = experiment_pb2.METRIC_ROLE_UNSPECIFIED


def _bad_forced(e: experiment_pb2.Experiment) -> None:
    e.forced_variations["qa-user"] = "v8"


def _schedule_backwards(e: experiment_pb2.Experiment) -> None:
    e.schedule.end_time.FromJsonString("2029-01-01T00:00:00Z")


def _efficacy_without_primary(e: experiment_pb2.Experiment) -> None:
    del e.metrics[0]


CASES: list[tuple[str, Callable[[experiment_pb2.Experiment], None], str]] = [
    ("key not a slug", _set("key", "Prompt V7"), "experiment.key"),
    ("empty key", _set("key", ""), "experiment.key"),
    ("one variant", _one_variant, "experiment.variants"),
    ("two controls", _two_controls, "experiment.variants"),
    ("no control", _no_control, "experiment.variants"),
    ("duplicate variant keys", _duplicate_keys, "experiment.variants[1].key"),
    ("weights sum to 0.9", _weights_not_one, "experiment.variants"),
    ("weight above 1", _weight_out_of_range, "experiment.variants[0].weight"),
    ("weight below 0", _weight_out_of_range, "experiment.variants[1].weight"),
    ("coverage above 1", _set("coverage", 1.01), "experiment.coverage"),
    ("coverage NaN", _set("coverage", float("nan")), "experiment.coverage"),
    ("targeting does not parse", _bad_targeting, "experiment.targeting.$or"),
    ("unknown metric key", _unknown_metric, "experiment.metrics[1].metric_key"),
    ("metric without role", _no_role, "experiment.metrics[1].role"),
    ("hash version 3", _set("hash_version", 3), "experiment.hash_version"),
    ("layer end before start", _set("layer.end", 0.0), "experiment.layer.end"),
    ("layer end above 1", _set("layer.end", 1.5), "experiment.layer.end"),
    ("layer without id", _set("layer.id", ""), "experiment.layer.id"),
    ("alpha above 0.5", _set("analysis_plan.alpha", 0.6), "experiment.analysis_plan.alpha"),
    ("power of 1", _set("analysis_plan.power", 1.0), "experiment.analysis_plan.power"),
    (
        "unknown proportion test",
        _set("analysis_plan.proportion_test", 9),
        "experiment.analysis_plan.proportion_test",
    ),
    (
        "negative MDE",
        _set("analysis_plan.minimum_detectable_effect", -0.1),
        "experiment.analysis_plan.minimum_detectable_effect",
    ),
    (
        "negative sample size",
        _set("stopping_rules.target_sample_size", -1),
        "experiment.stopping_rules.target_sample_size",
    ),
    (
        "SRM threshold of 1",
        _set("stopping_rules.srm_p_value_threshold", 1.0),
        "experiment.stopping_rules.srm_p_value_threshold",
    ),
    ("efficacy without primary", _efficacy_without_primary, "experiment.stopping_rules.efficacy"),
    ("schedule ends before start", _schedule_backwards, "experiment.schedule.end_time"),
    ("forced to unknown variant", _bad_forced, "experiment.forced_variations['qa-user']"),
]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [(m, f) for _, m, f in CASES],
    ids=[name for name, _, _ in CASES],
)
def test_each_rule_names_its_field(
    mutate: Callable[[experiment_pb2.Experiment], None], field: str
) -> None:
    experiment = valid_experiment()
    mutate(experiment)
    assert field in fields(experiment)


def test_variant_key_must_be_a_slug() -> None:
    experiment = valid_experiment()
    experiment.variants[1].key = "V 7"
    experiment.forced_variations.clear()
    assert fields(experiment) == {"experiment.variants[1].key"}


def test_weights_within_tolerance_of_one_are_accepted() -> None:
    experiment = valid_experiment()
    experiment.variants[0].weight = 1 / 3
    experiment.variants[1].weight = 2 / 3 + 5e-7
    assert fields(experiment) == set()


def test_every_violation_is_reported_at_once() -> None:
    experiment = valid_experiment()
    experiment.key = "BAD KEY"
    experiment.coverage = 2.0
    assert {"experiment.key", "experiment.coverage"} <= fields(experiment)


def test_defaults_fill_seed_hash_attribute_and_version() -> None:
    filled = with_defaults(experiment_pb2.Experiment(key="k"))
    assert (filled.seed, filled.hash_attribute, filled.hash_version) == ("k", "id", 2)
    kept = with_defaults(
        experiment_pb2.Experiment(key="k", seed="s", hash_attribute="device", hash_version=1)
    )
    assert (kept.seed, kept.hash_attribute, kept.hash_version) == ("s", "device", 1)


def metric(**overrides: object) -> experiment_pb2.Metric:
    spec: dict[str, object] = {
        "key": "latency",
        "type": "METRIC_TYPE_MEAN",
        "source": {"eventName": "llm_call", "measure": "latency_ms"},
        "direction": "DIRECTION_DECREASE",
    }
    spec.update(overrides)
    return json_format.ParseDict(spec, experiment_pb2.Metric())


def metric_fields(m: experiment_pb2.Metric) -> set[str]:
    return {v.field for v in validate_metric(m).items}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"key": "Latency!"}, "metric.key"),
        ({"type": "METRIC_TYPE_UNSPECIFIED"}, "metric.type"),
        ({"source": {"measure": "x"}}, "metric.source.event_name"),
        ({"source": {"eventName": "llm_call"}}, "metric.source.measure"),
        ({"type": "METRIC_TYPE_RATIO"}, "metric.denominator.event_name"),
        ({"denominator": {"eventName": "x"}}, "metric.denominator"),
        ({"type": "METRIC_TYPE_QUANTILE"}, "metric.quantile"),
        ({"type": "METRIC_TYPE_QUANTILE", "quantile": 1.0}, "metric.quantile"),
        ({"quantile": 0.5}, "metric.quantile"),
        ({"capping": "CAPPING_TYPE_PERCENTILE", "cappingValue": 1.5}, "metric.capping_value"),
        ({"capping": "CAPPING_TYPE_ABSOLUTE", "cappingValue": -1}, "metric.capping_value"),
        ({"cappingValue": 10}, "metric.capping_value"),
        ({"nonInferiorityMargin": -0.1}, "metric.non_inferiority_margin"),
        ({"window": "-5s"}, "metric.window"),
    ],
)
def test_metric_rules_name_their_field(overrides: dict[str, object], field: str) -> None:
    assert field in metric_fields(metric(**overrides))


def test_valid_metrics_of_each_type() -> None:
    assert metric_fields(metric()) == set()
    assert metric_fields(metric(type="METRIC_TYPE_BINOMIAL", source={"eventName": "e"})) == set()
    ratio = metric(
        type="METRIC_TYPE_RATIO",
        source={"eventName": "thumb", "measure": "up"},
        denominator={"eventName": "thumb"},
    )
    assert metric_fields(ratio) == set()
    assert metric_fields(metric(type="METRIC_TYPE_QUANTILE", quantile=0.95)) == set()
    capped = metric(capping="CAPPING_TYPE_PERCENTILE", cappingValue=0.99)
    assert metric_fields(capped) == set()


def test_saved_group_values_must_be_scalars() -> None:
    group = json_format.ParseDict(
        {"key": "beta", "values": ["a", 1, {"x": 1}, [1], None]}, experiment_pb2.SavedGroup()
    )
    assert {v.field for v in validate_saved_group(group).items} == {
        "saved_group.values[2]",
        "saved_group.values[3]",
        "saved_group.values[4]",
    }
    assert (
        validate_saved_group(experiment_pb2.SavedGroup(key="Beta Users")).items[0].field
        == "saved_group.key"
    )
