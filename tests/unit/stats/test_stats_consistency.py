"""No figure contradicts the one beside it: a property test over random sufficient statistics.

For every metric type, effect scale, sides, sequential on/off, correction and proportion
test, on random (often degenerate) statistics:

* each (interval, p-value) pair of every effect agrees: the interval excludes 0 exactly
  when the p-value is at most alpha, fixed-horizon and anytime-valid alike;
* ``significant`` is decided on the interval the ``decision_*`` fields name, and agrees
  with it and with its p-value; the verdict follows the documented rule;
* every ``None`` has a reason and no figure is NaN;
* where a reference exists it is computed here independently (scipy's Welch test,
  statsmodels' Wald and pooled z-tests) and matches.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats as sps
from statsmodels.stats import proportion as smp

from support.stats_strategies import metrics, plans
from verdict_analysis import stats as vs

ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}
SCIPY_ALT = {"two-sided": "two-sided", "greater": "greater", "less": "less"}
ABSOLUTE_METHOD = {
    vs.SampleStats: vs.Method.WELCH_T,
    vs.CupedStats: vs.Method.CUPED_Z,
    vs.RatioStats: vs.Method.RATIO_DELTA_METHOD,
    vs.RatioCupedStats: vs.Method.CUPED_RATIO_DELTA_METHOD,
    vs.QuantileStats: vs.Method.QUANTILE_OUTER_CI,
}


def _floats(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f for fld in dataclasses.fields(value) for f in _floats(getattr(value, fld.name))]
    if isinstance(value, tuple | list):
        return [f for item in value for f in _floats(item)]
    return [value] if isinstance(value, float) else []


def _check_effect(effect: vs.Effect, plan: vs.AnalysisPlan) -> None:
    assert effect.alpha == plan.alpha and effect.sides is plan.sides
    interval = effect.interval
    assert interval.excludes(0.0) == (effect.p_value <= plan.alpha), effect
    assert interval.lower <= effect.estimate <= interval.upper
    assert math.isinf(interval.lower) == (plan.sides is vs.Sides.LESS)
    assert math.isinf(interval.upper) == (plan.sides is vs.Sides.GREATER)
    if plan.sequential is None:
        assert effect.sequential_interval is None and effect.sequential_p_value is None
        assert effect.sequential_method is None
        assert effect.sequential_reason is vs.Reason.NOT_SEQUENTIAL
        return
    anytime = effect.sequential_interval
    assert anytime is not None and effect.sequential_p_value is not None
    assert anytime.excludes(0.0) == (effect.sequential_p_value <= plan.alpha), effect
    one_sided = plan.sides is not vs.Sides.TWO_SIDED
    assert effect.sequential_method is (
        vs.Method.MIXTURE_ONE_SIDED if one_sided else vs.Method.MIXTURE_TWO_SIDED
    )
    if math.isinf(effect.df):
        # Against the normal, the mixture boundary exceeds the fixed critical value. (The
        # sequence is asymptotic: against a t with few df it can be the narrower one,
        # a case flagged SMALL_SAMPLE.)
        assert anytime.lower <= interval.lower and anytime.upper >= interval.upper


def _check_decision(comp: vs.Comparison, metric: vs.MetricAnalysis, plan: vs.AnalysisPlan) -> None:
    sequential = plan.sequential is not None
    assert comp.decision_scale is plan.effect_scale
    assert comp.decision_sequential is sequential
    assert comp.decision_adjusted is (plan.correction is not vs.Correction.NONE)
    effect = comp.relative if plan.effect_scale is vs.EffectScale.RELATIVE else comp.absolute
    if effect is None:
        assert comp.decision_interval is None and comp.decision_p_value is None
        assert comp.p_value is None and comp.chance_to_beat_control is None
        assert not comp.significant and comp.verdict is vs.Verdict.INCONCLUSIVE
        assert comp.decision_reason is not None
        return
    interval, p = comp.decision_interval, comp.decision_p_value
    assert interval is not None and p is not None
    assert comp.significant == interval.excludes(0.0) == (p <= plan.alpha)
    assert p == comp.adjusted_p_value
    assert (interval.lower, interval.upper) == (comp.adjusted_ci_lower, comp.adjusted_ci_upper)
    raw = effect.sequential_interval if sequential else effect.interval
    assert raw is not None
    assert comp.p_value == (effect.sequential_p_value if sequential else effect.p_value)
    assert p >= comp.p_value
    assert interval.lower <= raw.lower and interval.upper >= raw.upper
    if plan.correction is vs.Correction.NONE:
        assert p == comp.p_value and interval == raw
    assert comp.verdict is vs.metric_verdict(
        interval, metric.direction, margin=metric.non_inferiority_margin
    )
    if not metric.non_inferiority_margin:
        assert (comp.verdict is not vs.Verdict.INCONCLUSIVE) == comp.significant
    assert comp.chance_to_beat_control is not None and comp.chance_to_beat_control_is_fixed_horizon


def _check_references(control: Any, treatment: Any, comp: vs.Comparison, plan: vs.AnalysisPlan):
    absolute = comp.absolute
    if absolute is None or plan.sequential is not None:
        return
    alt = plan.sides.value
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if isinstance(control, vs.SampleStats):
            ref = sps.ttest_ind_from_stats(
                treatment.mean, math.sqrt(treatment.variance), treatment.n_units,
                control.mean, math.sqrt(control.variance), control.n_units,
                equal_var=False, alternative=SCIPY_ALT[alt],
            )  # fmt: skip
            if np.isfinite(ref.pvalue):
                assert absolute.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
        if isinstance(control, vs.ProportionStats):
            counts = (treatment.successes, treatment.n_units, control.successes, control.n_units)
            if plan.proportion_test is vs.ProportionTest.POOLED:
                _, ref_p = smp.proportions_ztest(
                    [counts[0], counts[2]], [counts[1], counts[3]], alternative=ALTERNATIVE[alt]
                )
            else:
                ref_p = smp.test_proportions_2indep(
                    *counts, method="wald", correction=False, alternative=ALTERNATIVE[alt]
                ).pvalue
            if np.isfinite(ref_p):
                assert absolute.p_value == pytest.approx(ref_p, rel=1e-6, abs=1e-12)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(metrics(), plans)
def test_every_interval_agrees_with_its_p_value_and_the_decision_names_its_interval(
    inputs: list[vs.MetricInput], plan: vs.AnalysisPlan
) -> None:
    result = vs.analyze_experiment(inputs, plan)
    assert not any(math.isnan(f) for f in _floats(result))
    tested = 0
    for metric, given_ in zip(result.metrics, inputs, strict=True):
        assert metric.non_inferiority_margin == given_.non_inferiority_margin
        for summary in metric.variants:
            assert (summary.estimate is None) == (summary.reason is not None)
            assert (summary.method is None) == (summary.reason is not None)
            if summary.method is vs.Method.WILSON:
                assert summary.ci_lower is not None and summary.ci_upper is not None
                assert 0.0 <= summary.ci_lower <= summary.ci_upper <= 1.0
            small = summary.n_units < plan.small_sample_units and summary.reason is None
            assert (vs.Reason.SMALL_SAMPLE in summary.warnings) == small
        for comp in metric.comparisons:
            assert (comp.absolute is None) == (comp.reason is not None)
            assert (comp.relative is None) == (comp.relative_reason is not None)
            assert (comp.effect_size is None) == (comp.effect_size_reason is not None)
            for effect in (comp.absolute, comp.relative):
                if effect is not None:
                    _check_effect(effect, plan)
            if comp.relative is not None:
                assert comp.relative.method is vs.Method.DELTA_METHOD
            control, treatment = given_.variants["control"], given_.variants[comp.variant]
            if comp.absolute is not None:
                expected = ABSOLUTE_METHOD.get(type(control))
                if isinstance(control, vs.ProportionStats):
                    pooled = plan.proportion_test is vs.ProportionTest.POOLED
                    expected = vs.Method.Z_POOLED if pooled else vs.Method.Z_UNPOOLED
                assert comp.absolute.method is expected
            _check_decision(comp, metric, plan)
            _check_references(control, treatment, comp, plan)
            tested += comp.p_value is not None
    assert result.n_tests == tested
