"""Forms to requests: fields named like the API's paths, JSON and numbers checked before the
call, and the API's violations placed beside the field they name."""

from __future__ import annotations

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_dashboard import forms

FORM = {
    "key": "prompt-v7",
    "name": "Prompt v7",
    "control": "0",
    "variants[0].key": "control",
    "variants[0].weight": "0.5",
    "variants[0].payload": '{"model": "gpt-4o"}',
    "variants[1].key": "v7",
    "variants[1].weight": "0.5",
    "variants[1].payload": '{"model": "gpt-4o", "prompt_version": "v7", "temperature": 0.2}',
    "coverage": "0.5",
    "targeting": '{"country": {"$in": ["FR"]}}',
    "metric_role.conv": "primary",
    "metric_role.latency": "guardrail",
    "metric_role.unused": "",
    "analysis_plan.alpha": "0.05",
    "analysis_plan.sides": "greater",
    "analysis_plan.sequential": "on",
    "analysis_plan.correction": "bh",
    "analysis_plan.segments": "country, plan",
    "stopping_rules.efficacy": "on",
    "stopping_rules.srm_action": "stop",
    "stopping_rules.target_sample_size": "20000",
    "stopping_rules.max_duration_days": "14",
}


def test_a_complete_form_becomes_the_experiment_the_api_receives() -> None:
    parsed = forms.parse_experiment(FORM)
    assert parsed.errors == {}
    e: experiment_pb2.Experiment = parsed.message
    assert [v.key for v in e.variants] == ["control", "v7"]
    assert [v.is_control for v in e.variants] == [True, False]
    assert e.variants[1].payload["temperature"] == 0.2
    assert e.coverage == 0.5 and e.targeting["country"]["$in"][0] == "FR"
    assert {(m.metric_key, m.role) for m in e.metrics} == {
        ("conv", experiment_pb2.METRIC_ROLE_PRIMARY),
        ("latency", experiment_pb2.METRIC_ROLE_GUARDRAIL),
    }
    plan = e.analysis_plan
    assert plan.sides == common_pb2.SIDES_GREATER and plan.sequential
    assert plan.correction == experiment_pb2.MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG
    assert list(plan.segments) == ["country", "plan"]
    rules = e.stopping_rules
    assert rules.efficacy and rules.srm_action == experiment_pb2.SRM_ACTION_STOP
    assert rules.target_sample_size == 20000 and rules.max_duration.seconds == 14 * 86400


def test_invalid_json_and_numbers_name_their_field_and_keep_the_rest() -> None:
    values = dict(FORM)
    values["variants[1].payload"] = '{"model": "gpt-4o",'
    values["variants[0].weight"] = "half"
    values["targeting"] = '["FR"]'
    parsed = forms.parse_experiment(values)
    assert set(parsed.errors) == {"variants[1].payload", "variants[0].weight", "targeting"}
    assert "not valid JSON" in parsed.errors["variants[1].payload"]
    assert "JSON object" in parsed.errors["targeting"]
    assert parsed.message.name == "Prompt v7"


def test_variant_rows_are_counted_from_the_field_names() -> None:
    assert forms.variant_count({}) == 2
    assert forms.variant_count({"variants[2].key": "c"}) == 3
    assert forms.variant_count({"variants[99].key": "x"}) == forms.MAX_VARIANTS


def test_api_violations_land_on_the_nearest_field_of_the_form() -> None:
    known = {"key", "variants[1].payload", "variants", "stopping_rules.max_duration_days"}
    placed = forms.field_errors(
        {
            "experiment.key": "must be a slug",
            "experiment.variants[1].payload.model": "too long",
            "experiment.variants[0].weight": "weights must sum to 1",
            "experiment.stopping_rules.max_duration": "must be positive",
            "experiment.layer.id": "unknown layer",
        },
        known,
        prefix="experiment.",
    )
    assert placed == {
        "key": "must be a slug",
        "variants[1].payload": "too long",
        "variants": "weights must sum to 1",
        "stopping_rules.max_duration_days": "must be positive",
        forms.GENERAL: "experiment.layer.id: unknown layer",
    }


def test_the_metric_form_builds_each_type() -> None:
    ratio = forms.parse_metric(
        {
            "key": "cost_per_call",
            "name": "Cost per call",
            "type": "ratio",
            "source.event_name": "llm_call",
            "source.measure": "cost_usd",
            "denominator.event_name": "llm_call",
            "direction": "decrease",
            "window_days": "7",
        }
    )
    assert ratio.errors == {}
    m: experiment_pb2.Metric = ratio.message
    assert m.type == experiment_pb2.METRIC_TYPE_RATIO and m.denominator.event_name == "llm_call"
    assert m.direction == experiment_pb2.DIRECTION_DECREASE and m.window.seconds == 7 * 86400
    bad = forms.parse_metric({"key": "x", "type": "histogram", "quantile": "p95"})
    assert set(bad.errors) == {"type"}


def test_the_calculator_reads_the_plan_and_the_number_of_variants() -> None:
    values = dict(
        FORM,
        **{
            "variants[2].key": "mini",
            "calc.baseline": "0.1",
            "calc.minimum_detectable_effect": "0.05",
            "calc.mde_scale": "absolute",
            "calc.daily_units": "2000",
        },
    )
    parsed = forms.sample_size_request(values)
    request: analysis_pb2.CalculateSampleSizeRequest = parsed.message
    assert parsed.errors == {}
    assert request.variants == 3 and request.sequential and request.mde_is_absolute
    assert request.sides == common_pb2.SIDES_GREATER and request.coverage == 0.5
    assert request.metric_type == analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION
