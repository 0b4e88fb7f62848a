"""The single entry point: a full analysis of an experiment from sufficient statistics.

For each metric, every variant is summarised and compared with the control using the
method that matches its statistics (:mod:`.comparisons`); then the decision p-values of
all comparisons (the plan's effect scale, anytime-valid when sequential) form one family
for the plan's correction (Holm or Benjamini-Hochberg); each comparison's decision
interval is the same test's interval at the level that matches its adjusted p-value, and
``significant`` and the verdict are read off that one interval. SRM runs on the
assignment counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .comparisons import build_comparison, decision_effect
from .cuped import cuped_arms, cuped_theta, ratio_cuped_arms, ratio_cuped_theta
from .effects import ArmEstimate
from .interval import Interval, agreeing_p_value
from .means import mean_arm
from .multiple import adjust_p_values, adjusted_alpha
from .plan import AnalysisPlan, Correction, EffectScale, MetricType
from .proportions import proportion_arm
from .quantile import QuantileStats, quantile_arm
from .ratio import ratio_arm
from .reasons import Reason
from .results import (
    Comparison,
    ExperimentAnalysis,
    MetricAnalysis,
    MetricInput,
    MetricStats,
)
from .srm import SrmResult, srm_test
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats
from .summaries import summarise
from .validation import is_valid
from .verdict import metric_verdict

__all__ = ["analyze_experiment"]

_ACCEPTED: dict[MetricType, tuple[type, ...]] = {
    MetricType.MEAN: (SampleStats, CupedStats),
    MetricType.PROPORTION: (ProportionStats,),
    MetricType.RATIO: (RatioStats, RatioCupedStats),
    MetricType.QUANTILE: (QuantileStats,),
}


def _simple_arm(stats: MetricStats) -> ArmEstimate | Reason:
    if isinstance(stats, SampleStats | ProportionStats):
        if stats.n_units <= 0:
            return Reason.EMPTY_ARM
        if isinstance(stats, SampleStats):
            return mean_arm(stats) if stats.n_units >= 2 else Reason.INSUFFICIENT_DATA
        return proportion_arm(stats)
    if isinstance(stats, RatioStats):
        return ratio_arm(stats)
    if isinstance(stats, QuantileStats):
        return quantile_arm(stats)
    raise TypeError(type(stats))  # unreachable: CUPED arms are built together


def _arms(stats: list[MetricStats]) -> tuple[list[ArmEstimate | Reason], float | None]:
    """Arm estimates in input order, and the pooled CUPED theta if any."""
    if isinstance(stats[0], CupedStats):
        cuped = [s for s in stats if isinstance(s, CupedStats)]
        return cuped_arms(cuped), cuped_theta(cuped)
    if isinstance(stats[0], RatioCupedStats):
        ratio = [s for s in stats if isinstance(s, RatioCupedStats)]
        return ratio_cuped_arms(ratio), ratio_cuped_theta(ratio)
    return [_simple_arm(s) for s in stats], None


def _in_range(arm: ArmEstimate | Reason) -> ArmEstimate | Reason:
    """Finite inputs can still overflow (e.g. a ratio over a denominator of 1e-320)."""
    if isinstance(arm, Reason):
        return arm
    if math.isfinite(arm.mean) and math.isfinite(arm.variance_of_mean):
        return arm
    return Reason.OUT_OF_RANGE


def _analyse_metric(metric: MetricInput, plan: AnalysisPlan) -> MetricAnalysis:
    names = list(metric.variants)
    stats = [metric.variants[n] for n in names]

    def failed(reason: Reason) -> MetricAnalysis:
        return MetricAnalysis(
            metric.key, metric.metric_type, metric.direction, metric.control, (), (), None,
            reason, metric.non_inferiority_margin,
        )  # fmt: skip

    if metric.control not in metric.variants:
        return failed(Reason.MISSING_CONTROL)
    kind = type(stats[0])
    if kind not in _ACCEPTED[metric.metric_type] or any(type(s) is not kind for s in stats):
        return failed(Reason.INVALID_INPUT)
    if not all(is_valid(s) for s in stats):
        return failed(Reason.INVALID_INPUT)
    arms, theta = _arms(stats)
    arms = [_in_range(a) for a in arms]
    summaries = tuple(summarise(n, s, a, plan) for n, s, a in zip(names, stats, arms, strict=True))
    c = names.index(metric.control)
    comparisons = []
    for i, name in enumerate(names):
        if i == c:
            continue
        comparisons.append(
            build_comparison(name, (stats[c], arms[c]), (stats[i], arms[i]), metric, plan)
        )
    return MetricAnalysis(
        metric.key, metric.metric_type, metric.direction, metric.control, summaries,
        tuple(comparisons), theta, None, metric.non_inferiority_margin,
    )  # fmt: skip


def _decide(
    metric: MetricAnalysis, comp: Comparison, p_adj: float, level: float, plan: AnalysisPlan
) -> Comparison:
    """The comparison with its decision: the adjusted interval and its p-value agree."""
    effect = decision_effect(comp.absolute, comp.relative, plan)
    assert effect is not None  # a raw p-value implies the decision effect
    sequential = plan.sequential is not None
    interval = effect.interval_at(level, sequential=sequential)
    raw = effect.sequential_interval if sequential else effect.interval
    if raw is not None:
        # At a level no larger than the plan's, the interval contains the raw one; found again
        # by root finding (the pooled score test near its bracket's end), it could miss it by
        # the last bit.
        interval = Interval(min(interval.lower, raw.lower), max(interval.upper, raw.upper))
    p_adj = agreeing_p_value(p_adj, interval, plan.alpha)
    warnings = comp.warnings
    if (
        metric.metric_type is MetricType.PROPORTION
        and Reason.OUTSIDE_NATURAL_RANGE not in warnings
        and not _in_natural_range(interval, plan.effect_scale)
    ):
        warnings = (*warnings, Reason.OUTSIDE_NATURAL_RANGE)
    verdict = metric_verdict(interval, metric.direction, margin=metric.non_inferiority_margin)
    return replace(
        comp,
        decision_interval=interval,
        decision_p_value=p_adj,
        significant=p_adj <= plan.alpha,
        verdict=verdict,
        adjusted_p_value=p_adj,
        adjusted_ci_lower=interval.lower,
        adjusted_ci_upper=interval.upper,
        warnings=warnings,
    )


def _in_natural_range(interval: Interval, scale: EffectScale) -> bool:
    """A difference of rates lies in [-1, 1]; a relative lift of a rate is at least -1."""
    return interval.within(-1.0, 1.0 if scale is EffectScale.ABSOLUTE else float("inf"))


def _correct(metrics: list[MetricAnalysis], plan: AnalysisPlan) -> tuple[list[MetricAnalysis], int]:
    """Apply the correction over every tested comparison of every metric, then decide."""
    index = [
        (i, j)
        for i, m in enumerate(metrics)
        for j, comp in enumerate(m.comparisons)
        if comp.p_value is not None
    ]
    raw = [metrics[i].comparisons[j].p_value or 0.0 for i, j in index]
    adjusted = adjust_p_values(raw, plan.correction)
    m_tests = len(index)
    updated = [list(m.comparisons) for m in metrics]
    for (i, j), p, p_adj in zip(index, raw, adjusted, strict=True):
        level = (
            plan.alpha
            if plan.correction is Correction.NONE
            else adjusted_alpha(plan.alpha, p, p_adj, m_tests)
        )
        updated[i][j] = _decide(metrics[i], updated[i][j], p_adj, level, plan)
    return [
        replace(m, comparisons=tuple(c)) for m, c in zip(metrics, updated, strict=True)
    ], m_tests


def _srm(counts: Mapping[str, int], plan: AnalysisPlan) -> SrmResult:
    names = list(counts)
    weights: list[float] | None = None
    if plan.variant_weights is not None:
        if set(plan.variant_weights) != set(names):
            return srm_test([], None)  # reason INVALID_INPUT
        weights = [plan.variant_weights[n] for n in names]
    return srm_test(
        [counts[n] for n in names],
        weights,
        alpha=plan.srm_alpha,
        prior_concentration=plan.srm_prior_concentration,
    )


def analyze_experiment(
    metrics: Sequence[MetricInput],
    plan: AnalysisPlan | None = None,
    *,
    assignment_counts: Mapping[str, int] | None = None,
) -> ExperimentAnalysis:
    """Analyse every metric x variant against its control, correct, decide, and check SRM.

    ``assignment_counts`` (units assigned per variant) feeds the SRM check; without
    it ``srm`` is ``None``. Never raises on degenerate data: see each result's ``reason``.
    """
    plan = plan or AnalysisPlan()
    analysed = [_analyse_metric(m, plan) for m in metrics]
    corrected, n_tests = _correct(analysed, plan)
    srm = _srm(assignment_counts, plan) if assignment_counts is not None else None
    return ExperimentAnalysis(tuple(corrected), srm, plan, n_tests)
