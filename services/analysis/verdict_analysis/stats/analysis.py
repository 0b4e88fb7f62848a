"""The single entry point: a full analysis of an experiment from sufficient statistics.

For each metric, every variant is summarised and compared with the control using the
method that matches its statistics (Welch, z-test, delta-method ratio, CUPED,
clustered quantile); then the headline p-values of all comparisons form one family
for the plan's correction (Holm or Benjamini-Hochberg) with matching intervals; the
Bayesian figures use the same effect; SRM runs on the assignment counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ._numeric import critical_value
from .bayesian import bayesian_summary
from .cuped import cuped_arms, cuped_theta, ratio_cuped_arms, ratio_cuped_theta
from .effects import ArmEstimate, Effect, TestResult, adjusted_interval, compare
from .means import cohens_d, mean_arm
from .multiple import adjust_p_values, adjusted_alpha
from .plan import AnalysisPlan, EffectScale, MetricType
from .proportions import cohens_h, two_proportion_z_test
from .quantile import QuantileStats, quantile_arm
from .ratio import ratio_arm
from .reasons import Reason
from .results import (
    Comparison,
    ExperimentAnalysis,
    MetricAnalysis,
    MetricInput,
    MetricStats,
    VariantSummary,
)
from .srm import SrmResult, srm_test
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats

__all__ = ["analyze_experiment"]

_ACCEPTED: dict[MetricType, tuple[type, ...]] = {
    MetricType.MEAN: (SampleStats, CupedStats),
    MetricType.PROPORTION: (ProportionStats,),
    MetricType.RATIO: (RatioStats, RatioCupedStats),
    MetricType.QUANTILE: (QuantileStats,),
}


def _units(stats: MetricStats) -> int:
    if isinstance(stats, SampleStats | ProportionStats | CupedStats):
        return stats.n
    return stats.n_units


def _simple_arm(stats: MetricStats) -> ArmEstimate | Reason:
    if isinstance(stats, SampleStats | ProportionStats):
        if stats.n <= 0:
            return Reason.EMPTY_ARM
        if isinstance(stats, SampleStats):
            return mean_arm(stats) if stats.n >= 2 else Reason.INSUFFICIENT_DATA
        return ArmEstimate(stats.n, stats.mean, stats.variance / stats.n)
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


def _summary(
    name: str, stats: MetricStats, arm: ArmEstimate | Reason, alpha: float
) -> VariantSummary:
    units = _units(stats)
    if isinstance(arm, Reason):
        return VariantSummary(name, units, None, None, None, None, arm)
    se = math.sqrt(arm.variance_of_mean)
    if isinstance(stats, QuantileStats):
        return VariantSummary(name, units, arm.mean, se, stats.lower_value, stats.upper_value)
    half = critical_value(1.0 - alpha / 2.0, arm.df) * se
    return VariantSummary(name, units, arm.mean, se, arm.mean - half, arm.mean + half)


def _effect_size(control: MetricStats, treatment: MetricStats) -> float | None:
    if isinstance(control, SampleStats) and isinstance(treatment, SampleStats):
        return cohens_d(control, treatment)
    if isinstance(control, CupedStats) and isinstance(treatment, CupedStats):
        return cohens_d(control.outcome, treatment.outcome)
    if isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        return cohens_h(control, treatment)
    return None


def _empty(
    variant: str, reason: Reason | None, relative_reason: Reason | None = None
) -> Comparison:
    return Comparison(
        variant, None, None, None, None, None, None, False, None, None, None, None,
        reason, relative_reason,
    )  # fmt: skip


def _compare(
    name: str,
    control: tuple[MetricStats, ArmEstimate | Reason],
    treatment: tuple[MetricStats, ArmEstimate | Reason],
    metric: MetricInput,
    plan: AnalysisPlan,
) -> Comparison:
    (c_stats, c_arm), (t_stats, t_arm) = control, treatment
    if isinstance(c_arm, Reason):
        return _empty(name, c_arm)
    if isinstance(t_arm, Reason):
        return _empty(name, t_arm)
    test: TestResult
    if isinstance(c_stats, ProportionStats) and isinstance(t_stats, ProportionStats):
        test = two_proportion_z_test(
            c_stats,
            t_stats,
            alpha=plan.alpha,
            sides=plan.sides,
            sequential=plan.sequential,
            pooled=plan.pooled_proportion_variance,
        )
    else:
        test = compare(c_arm, t_arm, alpha=plan.alpha, sides=plan.sides, sequential=plan.sequential)
    if test.absolute is None:
        return _empty(name, test.reason)
    primary = test.relative if plan.effect_scale is EffectScale.RELATIVE else test.absolute
    effect_size = _effect_size(c_stats, t_stats)
    if primary is None:
        return replace(
            _empty(name, test.relative_reason, test.relative_reason),
            absolute=test.absolute,
            effect_size=effect_size,
        )
    p_value = primary.p_value if plan.sequential is None else primary.sequential_p_value
    bayes = bayesian_summary(primary.estimate, primary.std_error, plan.prior, metric.direction)
    return Comparison(
        variant=name,
        absolute=test.absolute,
        relative=test.relative,
        p_value=p_value,
        adjusted_p_value=None,
        adjusted_ci_lower=None,
        adjusted_ci_upper=None,
        significant=False,
        chance_to_beat_control=bayes.chance_to_beat_control,
        expected_loss=bayes.expected_loss,
        expected_loss_control=bayes.expected_loss_control,
        effect_size=effect_size,
        relative_reason=test.relative_reason,
    )


def _analyse_metric(metric: MetricInput, plan: AnalysisPlan) -> MetricAnalysis:
    names = list(metric.variants)
    stats = [metric.variants[n] for n in names]

    def failed(reason: Reason) -> MetricAnalysis:
        return MetricAnalysis(
            metric.key, metric.metric_type, metric.direction, metric.control, (), (), None, reason
        )

    if metric.control not in metric.variants:
        return failed(Reason.MISSING_CONTROL)
    kind = type(stats[0])
    if kind not in _ACCEPTED[metric.metric_type] or any(type(s) is not kind for s in stats):
        return failed(Reason.INVALID_INPUT)
    arms, theta = _arms(stats)
    summaries = tuple(
        _summary(n, s, a, plan.alpha) for n, s, a in zip(names, stats, arms, strict=True)
    )
    c = names.index(metric.control)
    comparisons = tuple(
        _compare(names[i], (stats[c], arms[c]), (stats[i], arms[i]), metric, plan)
        for i in range(len(names))
        if i != c
    )
    return MetricAnalysis(
        metric.key,
        metric.metric_type,
        metric.direction,
        metric.control,
        summaries,
        comparisons,
        theta,
    )


def _primary(comparison: Comparison, plan: AnalysisPlan) -> Effect | None:
    return comparison.relative if plan.effect_scale is EffectScale.RELATIVE else comparison.absolute


def _correct(metrics: list[MetricAnalysis], plan: AnalysisPlan) -> tuple[list[MetricAnalysis], int]:
    """Apply the correction over every tested comparison of every metric."""
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
        comp = updated[i][j]
        effect = _primary(comp, plan)
        if effect is None:  # pragma: no cover - p_value implies an effect
            continue
        level = adjusted_alpha(plan.alpha, p, p_adj, m_tests)
        n_total = _comparison_units(metrics[i], comp.variant)
        lower, upper = adjusted_interval(
            effect, level, plan.sides, n_total, plan.sequential, plan.alpha
        )
        updated[i][j] = replace(
            comp,
            adjusted_p_value=p_adj,
            adjusted_ci_lower=lower,
            adjusted_ci_upper=upper,
            significant=p_adj <= plan.alpha,
        )
    return [
        replace(m, comparisons=tuple(c)) for m, c in zip(metrics, updated, strict=True)
    ], m_tests


def _comparison_units(metric: MetricAnalysis, variant: str) -> int:
    units = {v.variant: v.units for v in metric.variants}
    return units[metric.control] + units[variant]


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
    """Analyse every metric x variant against its control, correct, and check SRM.

    ``assignment_counts`` (units assigned per variant) feeds the SRM check; without
    it ``srm`` is ``None``. Never raises on degenerate data: see each result's ``reason``.
    """
    plan = plan or AnalysisPlan()
    analysed = [_analyse_metric(m, plan) for m in metrics]
    corrected, n_tests = _correct(analysed, plan)
    srm = _srm(assignment_counts, plan) if assignment_counts is not None else None
    return ExperimentAnalysis(tuple(corrected), srm, plan, n_tests)
