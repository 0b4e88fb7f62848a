"""One treatment against the control: the test for the statistics' kind, before correction.

The method follows the statistics (Welch for means, the plan's proportion test, delta
method for ratios, CUPED, clustered quantile); the Bayesian figures use the decision
scale's effect; the effect size is Cohen's d or h where defined, else a reason. The
decision itself (adjusted interval, ``significant``, verdict) is set afterwards by
:mod:`.analysis`, once the whole family of p-values is known.
"""

from __future__ import annotations

from .bayesian import bayesian_summary
from .effects import ArmEstimate, Effect, TestResult, compare
from .means import cohens_d, cohens_d_reason
from .methods import Method
from .plan import AnalysisPlan, Correction, EffectScale
from .proportions import cohens_h, cohens_h_reason, two_proportion_z_test
from .reasons import Reason
from .results import Comparison, MetricInput, MetricStats
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats
from .summaries import comparison_warnings
from .verdict import Verdict

__all__ = ["build_comparison", "decision_effect", "effect_size"]

Arm = tuple[MetricStats, ArmEstimate | Reason]


def effect_size(
    control: MetricStats, treatment: MetricStats
) -> tuple[float | None, Method | None, Reason | None]:
    """``(value, method, reason)``: Cohen's d for means, h for proportions, else undefined."""
    if isinstance(control, CupedStats) and isinstance(treatment, CupedStats):
        control, treatment = control.outcome, treatment.outcome
    if isinstance(control, SampleStats) and isinstance(treatment, SampleStats):
        return cohens_d(control, treatment), Method.COHENS_D, cohens_d_reason(control, treatment)
    if isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        return cohens_h(control, treatment), Method.COHENS_H, cohens_h_reason(control, treatment)
    return None, None, Reason.NOT_DEFINED_FOR_METRIC_TYPE


def decision_effect(
    absolute: Effect | None, relative: Effect | None, plan: AnalysisPlan
) -> Effect | None:
    return relative if plan.effect_scale is EffectScale.RELATIVE else absolute


def _method(stats: MetricStats) -> Method:
    if isinstance(stats, CupedStats):
        return Method.CUPED_Z
    if isinstance(stats, RatioStats):
        return Method.RATIO_DELTA_METHOD
    if isinstance(stats, RatioCupedStats):
        return Method.CUPED_RATIO_DELTA_METHOD
    if isinstance(stats, SampleStats):
        return Method.WELCH_T
    return Method.QUANTILE_OUTER_CI


def _test(control: Arm, treatment: Arm, plan: AnalysisPlan) -> TestResult:
    (c_stats, c_arm), (t_stats, t_arm) = control, treatment
    if isinstance(c_arm, Reason):
        return TestResult(None, None, c_arm, c_arm)
    if isinstance(t_arm, Reason):
        return TestResult(None, None, t_arm, t_arm)
    if isinstance(c_stats, ProportionStats) and isinstance(t_stats, ProportionStats):
        return two_proportion_z_test(
            c_stats,
            t_stats,
            alpha=plan.alpha,
            sides=plan.sides,
            sequential=plan.sequential,
            test=plan.proportion_test,
        )
    return compare(
        c_arm,
        t_arm,
        alpha=plan.alpha,
        sides=plan.sides,
        sequential=plan.sequential,
        method=_method(c_stats),
    )


def build_comparison(
    name: str, control: Arm, treatment: Arm, metric: MetricInput, plan: AnalysisPlan
) -> Comparison:
    """The comparison with its effects, raw decision p-value, Bayesian figures and warnings."""
    test = _test(control, treatment, plan)
    size, size_method, size_reason = effect_size(control[0], treatment[0])
    effect = decision_effect(test.absolute, test.relative, plan)
    p_value = chance = loss = loss_control = None
    missing: Reason | None = None
    if effect is None:
        relative = plan.effect_scale is EffectScale.RELATIVE
        missing = (test.relative_reason if relative else None) or test.reason
    else:
        p_value = effect.p_value if plan.sequential is None else effect.sequential_p_value
        bayes = bayesian_summary(effect.estimate, effect.std_error, plan.prior, metric.direction)
        chance, loss = bayes.chance_to_beat_control, bayes.expected_loss
        loss_control = bayes.expected_loss_control
    return Comparison(
        variant=name,
        absolute=test.absolute,
        relative=test.relative,
        decision_scale=plan.effect_scale,
        decision_sequential=plan.sequential is not None,
        decision_adjusted=plan.correction is not Correction.NONE,
        decision_interval=None,
        decision_p_value=None,
        significant=False,
        verdict=Verdict.INCONCLUSIVE,
        decision_reason=missing,
        p_value=p_value,
        chance_to_beat_control=chance,
        expected_loss=loss,
        expected_loss_control=loss_control,
        effect_size=size,
        effect_size_method=size_method if size is not None else None,
        effect_size_reason=size_reason,
        reason=test.reason,
        relative_reason=test.relative_reason,
        warnings=comparison_warnings(control[0], treatment[0], plan, test.absolute, test.relative),
    )
