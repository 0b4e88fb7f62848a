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
    Method,
    MetricInput,
    MetricType,
    ProportionStats,
    ProportionTest,
    RatioStats,
    Reason,
    SampleStats,
    SequentialDesign,
    Sides,
    Verdict,
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


def test_issue_example_each_scale_carries_its_own_test_and_the_decision_names_its_scale() -> None:
    # Control 0.100 vs treatment 0.1085, 10,000 per arm, relative plan: the absolute interval
    # [0.00003, 0.01697] excludes 0, and now says so with its own p-value (< 0.05), while
    # the decision is on the relative interval, whose p-value is 0.059.
    metric = MetricInput(
        "conv", MetricType.PROPORTION, "control",
        {"control": ProportionStats(10_000, 1000), "t": ProportionStats(10_000, 1085)},
    )  # fmt: skip
    plan = AnalysisPlan(effect_scale=EffectScale.RELATIVE)
    comp = analyze_experiment([metric], plan).metrics[0].comparisons[0]
    assert comp.absolute is not None and comp.relative is not None
    assert comp.absolute.method is Method.Z_UNPOOLED
    assert comp.absolute.ci_lower == pytest.approx(0.00003, abs=1e-5)
    assert comp.absolute.ci_upper == pytest.approx(0.01697, abs=1e-5)
    assert comp.absolute.p_value == pytest.approx(0.0492, abs=1e-4)
    assert comp.relative.method is Method.DELTA_METHOD
    assert comp.relative.p_value == pytest.approx(0.059, abs=1e-3)
    assert comp.relative.ci_lower < 0.0
    assert comp.decision_scale is EffectScale.RELATIVE
    assert not comp.decision_sequential and comp.decision_adjusted
    assert comp.decision_interval == comp.relative.interval
    assert comp.decision_p_value == comp.p_value == comp.relative.p_value
    assert not comp.significant and comp.verdict is Verdict.INCONCLUSIVE
    absolute_plan = AnalysisPlan(effect_scale=EffectScale.ABSOLUTE)
    on_absolute = analyze_experiment([metric], absolute_plan).metrics[0].comparisons[0]
    assert on_absolute.significant and on_absolute.verdict is Verdict.WIN
    assert on_absolute.decision_interval == on_absolute.absolute.interval  # type: ignore[union-attr]


def test_sequential_headline_figures_are_labelled() -> None:
    plan = AnalysisPlan(sequential=SequentialDesign(), effect_scale=EffectScale.RELATIVE)
    for comp in (c for m in analyze_experiment(_metrics(), plan).metrics for c in m.comparisons):
        assert comp.decision_sequential
        assert comp.relative is not None and comp.absolute is not None
        assert comp.p_value == comp.relative.sequential_p_value
        assert comp.absolute.sequential_method is Method.MIXTURE_TWO_SIDED
        assert comp.chance_to_beat_control is not None
        assert comp.chance_to_beat_control_is_fixed_horizon


def test_effect_size_has_a_value_or_a_reason_for_every_metric_type() -> None:
    result = analyze_experiment(_metrics())
    by_key = {m.key: m.comparisons[0] for m in result.metrics}
    assert by_key["revenue"].effect_size_method is Method.COHENS_D
    assert by_key["tokens"].effect_size_method is Method.COHENS_D  # CUPED: on the outcome
    assert by_key["converted"].effect_size_method is Method.COHENS_H
    for key in ("thumbs_per_response", "p95_latency"):
        assert by_key[key].effect_size is None and by_key[key].effect_size_method is None
        assert by_key[key].effect_size_reason is Reason.NOT_DEFINED_FOR_METRIC_TYPE
    flat = MetricInput(
        "flat", MetricType.MEAN, "control",
        {"control": SampleStats(5, 10.0, 20.0), "a": SampleStats(5, 10.0, 20.0)},
    )  # fmt: skip
    assert analyze_experiment([flat]).metrics[0].comparisons[0].effect_size_reason is (
        Reason.ZERO_VARIANCE
    )


@pytest.mark.parametrize(
    "bad",
    [
        ProportionStats(10, 11),
        ProportionStats(-1, 0),
        SampleStats(10, math.inf, 1.0),
        SampleStats(10, math.nan, 1.0),
    ],
)
def test_invalid_statistics_are_refused_with_a_reason(bad: object) -> None:
    kind = MetricType.PROPORTION if isinstance(bad, ProportionStats) else MetricType.MEAN
    good = ProportionStats(10, 3) if isinstance(bad, ProportionStats) else SampleStats(3, 3, 5)
    metric = MetricInput("x", kind, "control", {"control": good, "a": bad})  # type: ignore[dict-item]
    result = analyze_experiment([metric])
    assert result.metrics[0].reason is Reason.INVALID_INPUT and result.n_tests == 0


def test_overflowing_ratio_is_out_of_range_not_nan() -> None:
    tiny = RatioStats(40, 30.0, 40.0, 1e-320, 0.0, 1e-320)
    normal = RatioStats(40, 30.0, 40.0, 80.0, 200.0, 70.0)
    metric = MetricInput("r", MetricType.RATIO, "control", {"control": normal, "a": tiny})
    result = analyze_experiment([metric])
    assert result.metrics[0].variants[1].reason is Reason.OUT_OF_RANGE
    assert result.metrics[0].comparisons[0].reason is Reason.OUT_OF_RANGE
    assert not any(math.isnan(f) for f in _walk_floats(result))


def test_an_adjusted_interval_always_contains_the_raw_one() -> None:
    """Found by the consistency test: with one unit in an arm, the pooled score interval's
    bound sits where the statistic flattens near the end of its bracket, and the root found
    again at Holm's stricter level came out one bit inside the raw one."""
    metric = MetricInput(
        "m0",
        MetricType.PROPORTION,
        "control",
        {
            "control": ProportionStats(51, 6),
            "t0": ProportionStats(1, 1),
            "t1": ProportionStats(30, 30),
        },
    )
    plan = AnalysisPlan(
        alpha=0.01,
        sides=Sides.LESS,
        correction=Correction.HOLM,
        proportion_test=ProportionTest.POOLED,
    )
    for comp in analyze_experiment([metric], plan).metrics[0].comparisons:
        raw, adjusted = comp.absolute, comp.decision_interval
        assert raw is not None and adjusted is not None
        assert adjusted.lower <= raw.ci_lower and adjusted.upper >= raw.ci_upper
        assert comp.significant == adjusted.excludes(0.0) == (comp.adjusted_p_value <= 0.01)
