"""analyze_experiment: one entry point over metric types, corrections, SRM and reasons."""

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from verdict_analysis.stats import (
    AnalysisPlan,
    Correction,
    CupedStats,
    Direction,
    EffectScale,
    MetricInput,
    MetricType,
    ProportionStats,
    RatioStats,
    Reason,
    SampleStats,
    SequentialDesign,
    analyze_experiment,
    holm,
    quantile_stats_from_events,
    welch_t_test,
)

RNG = np.random.default_rng(2024)
VARIANTS = ("control", "a", "b")


def _metrics() -> list[MetricInput]:
    mean = {
        v: SampleStats.from_values(RNG.normal(10 + i * 0.2, 3, 800)) for i, v in enumerate(VARIANTS)
    }
    prop = {v: ProportionStats(1000, 100 + 10 * i) for i, v in enumerate(VARIANTS)}
    ratio = {
        v: RatioStats.from_values(RNG.poisson(2, 500).astype(float), RNG.poisson(6, 500) + 1.0)
        for v in VARIANTS
    }
    x = {v: RNG.normal(5, 2, 600) for v in VARIANTS}
    cuped = {v: CupedStats.from_values(x[v] + RNG.normal(0, 1, 600), x[v]) for v in VARIANTS}
    quant = {}
    for v in VARIANTS:
        ids = np.repeat(np.arange(400), 3)
        quant[v] = quantile_stats_from_events(RNG.lognormal(0, 1, ids.size), ids, 0.95)
    return [
        MetricInput("revenue", MetricType.MEAN, "control", mean),
        MetricInput("converted", MetricType.PROPORTION, "control", prop),
        MetricInput("thumbs_per_response", MetricType.RATIO, "control", ratio),
        MetricInput("tokens", MetricType.MEAN, "control", cuped),
        MetricInput("p95_latency", MetricType.QUANTILE, "control", quant, Direction.DECREASE),
    ]


def _walk_floats(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            f
            for field in dataclasses.fields(value)
            for f in _walk_floats(getattr(value, field.name))
        ]
    if isinstance(value, tuple | list):
        return [f for item in value for f in _walk_floats(item)]
    return [value] if isinstance(value, float) else []


def test_every_metric_and_variant_is_analysed_without_nan() -> None:
    result = analyze_experiment(
        _metrics(), AnalysisPlan(), assignment_counts={v: 1000 for v in VARIANTS}
    )
    assert [m.key for m in result.metrics] == [
        "revenue",
        "converted",
        "thumbs_per_response",
        "tokens",
        "p95_latency",
    ]
    for metric in result.metrics:
        assert metric.reason is None
        assert [v.variant for v in metric.variants] == list(VARIANTS)
        assert [c.variant for c in metric.comparisons] == ["a", "b"]
        for comp in metric.comparisons:
            assert comp.reason is None and comp.p_value is not None
            assert comp.adjusted_p_value is not None and comp.adjusted_p_value >= comp.p_value
            assert comp.chance_to_beat_control is not None
    assert result.n_tests == 10
    assert not any(math.isnan(f) for f in _walk_floats(result))
    assert result.srm is not None and not result.srm.mismatch
    assert result.metrics[3].cuped_theta == pytest.approx(1.0, abs=0.1)


def test_means_comparison_equals_the_standalone_welch_test() -> None:
    metrics = _metrics()
    result = analyze_experiment(metrics[:1], AnalysisPlan(correction=Correction.NONE))
    comp = result.metrics[0].comparisons[0]
    direct = welch_t_test(metrics[0].variants["control"], metrics[0].variants["a"])  # type: ignore[arg-type]
    assert comp.absolute == direct.absolute
    assert comp.p_value == comp.adjusted_p_value == direct.absolute.p_value  # type: ignore[union-attr]
    assert comp.effect_size is not None


def test_holm_family_spans_metrics_and_variants_with_matching_intervals() -> None:
    result = analyze_experiment(_metrics(), AnalysisPlan(correction=Correction.HOLM))
    comps = [c for m in result.metrics for c in m.comparisons]
    raw = [c.p_value for c in comps]
    assert [c.adjusted_p_value for c in comps] == pytest.approx(holm(raw))  # type: ignore[arg-type]
    for c in comps:
        assert c.absolute is not None and c.adjusted_ci_lower is not None
        assert c.adjusted_ci_upper is not None
        assert (
            c.adjusted_ci_lower <= c.absolute.ci_lower
            and c.adjusted_ci_upper >= c.absolute.ci_upper
        )
        excludes_zero = c.adjusted_ci_lower > 0 or c.adjusted_ci_upper < 0
        assert excludes_zero == c.significant


def test_sequential_plan_uses_anytime_p_values_and_relative_scale() -> None:
    plan = AnalysisPlan(
        sequential=SequentialDesign(),
        effect_scale=EffectScale.RELATIVE,
        correction=Correction.BENJAMINI_HOCHBERG,
    )
    result = analyze_experiment(_metrics(), plan)
    for comp in (c for m in result.metrics for c in m.comparisons):
        assert comp.relative is not None
        assert comp.p_value == comp.relative.sequential_p_value
        assert comp.adjusted_ci_lower is not None and comp.relative.sequential_ci_lower is not None
        assert comp.adjusted_ci_lower <= comp.relative.sequential_ci_lower


def test_degenerate_metrics_carry_reasons() -> None:
    empty = MetricInput(
        "m",
        MetricType.MEAN,
        "control",
        {"control": SampleStats(0, 0.0, 0.0), "a": SampleStats(3, 3.0, 5.0)},
    )
    flat = MetricInput(
        "f",
        MetricType.PROPORTION,
        "control",
        {"control": ProportionStats(10, 0), "a": ProportionStats(10, 0)},
    )
    missing = MetricInput("x", MetricType.MEAN, "control", {"a": SampleStats(3, 3.0, 5.0)})
    wrong = MetricInput(
        "w",
        MetricType.RATIO,
        "control",
        {"control": SampleStats(3, 3.0, 5.0), "a": SampleStats(3, 3.0, 5.0)},
    )
    zero = MetricInput(
        "z",
        MetricType.MEAN,
        "control",
        {"control": SampleStats.from_values([-1.0, 1.0]), "a": SampleStats.from_values([1.0, 2.0])},
    )
    result = analyze_experiment(
        [empty, flat, missing, wrong, zero], AnalysisPlan(effect_scale=EffectScale.RELATIVE)
    )
    m_empty, m_flat, m_missing, m_wrong, m_zero = result.metrics
    assert m_empty.variants[0].reason is Reason.EMPTY_ARM
    assert m_empty.comparisons[0].reason is Reason.EMPTY_ARM
    assert m_flat.comparisons[0].reason is Reason.ZERO_VARIANCE
    assert m_missing.reason is Reason.MISSING_CONTROL
    assert m_wrong.reason is Reason.INVALID_INPUT
    # Only the relative effect (the decision scale here) is missing, and its reason says why.
    zero_comp = m_zero.comparisons[0]
    assert zero_comp.reason is None and zero_comp.absolute is not None
    assert zero_comp.relative_reason is Reason.CONTROL_MEAN_ZERO
    assert zero_comp.decision_reason is Reason.CONTROL_MEAN_ZERO
    assert zero_comp.decision_interval is None and not zero_comp.significant
    assert result.n_tests == 0
    assert not any(math.isnan(f) for f in _walk_floats(result))


def test_srm_uses_planned_weights() -> None:
    plan = AnalysisPlan(variant_weights={"control": 0.5, "a": 0.25, "b": 0.25})
    ok = analyze_experiment([], plan, assignment_counts={"control": 5000, "a": 2500, "b": 2500})
    bad = analyze_experiment([], plan, assignment_counts={"control": 3400, "a": 3300, "b": 3300})
    assert ok.srm is not None and not ok.srm.mismatch
    assert bad.srm is not None and bad.srm.mismatch
    mismatched_names = analyze_experiment([], plan, assignment_counts={"control": 1, "z": 1})
    assert mismatched_names.srm is not None and mismatched_names.srm.reason is Reason.INVALID_INPUT
