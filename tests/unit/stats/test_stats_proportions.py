"""Two-proportion tests against statsmodels; Wilson intervals; small-sample flags; Cohen's h."""

import numpy as np
import pytest
from statsmodels.stats import proportion as smp

from verdict_analysis.stats import (
    Method,
    MetricInput,
    MetricType,
    ProportionStats,
    ProportionTest,
    Reason,
    Sides,
    analyze_experiment,
    cohens_h,
    two_proportion_z_test,
    wilson_interval,
)

CASES = [(120, 1000, 150, 1010), (33, 400, 21, 390), (5000, 20000, 5150, 20100)]


@pytest.mark.parametrize(("c_succ", "c_n", "t_succ", "t_n"), CASES)
@pytest.mark.parametrize("sides", list(Sides))
def test_pooled_p_value_matches_statsmodels_ztest(
    c_succ: int, c_n: int, t_succ: int, t_n: int, sides: Sides
) -> None:
    alt = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[sides.value]
    result = two_proportion_z_test(
        ProportionStats(c_n, c_succ),
        ProportionStats(t_n, t_succ),
        sides=sides,
        test=ProportionTest.POOLED,
    )
    _, p = smp.proportions_ztest([t_succ, c_succ], [t_n, c_n], alternative=alt)
    assert result.absolute is not None
    assert result.absolute.p_value == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize(("c_succ", "c_n", "t_succ", "t_n"), CASES)
def test_unpooled_wald_matches_statsmodels(c_succ: int, c_n: int, t_succ: int, t_n: int) -> None:
    result = two_proportion_z_test(ProportionStats(c_n, c_succ), ProportionStats(t_n, t_succ))
    assert result.absolute is not None
    ref = smp.test_proportions_2indep(t_succ, t_n, c_succ, c_n, method="wald", correction=False)
    lower, upper = smp.confint_proportions_2indep(
        t_succ, t_n, c_succ, c_n, method="wald", correction=False
    )
    assert result.absolute.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert result.absolute.ci_lower == pytest.approx(lower, abs=1e-6)
    assert result.absolute.ci_upper == pytest.approx(upper, abs=1e-6)


def test_relative_lift_interval_by_delta_method() -> None:
    c, t = ProportionStats(1000, 100), ProportionStats(1000, 120)
    result = two_proportion_z_test(c, t)
    assert result.relative is not None
    var = (0.12 * 0.88 / 1000) / 0.1**2 + 0.12**2 * (0.1 * 0.9 / 1000) / 0.1**4
    assert result.relative.estimate == pytest.approx(0.2)
    assert result.relative.std_error == pytest.approx(np.sqrt(var))


def test_cohens_h_matches_statsmodels() -> None:
    h = cohens_h(ProportionStats(100, 30), ProportionStats(100, 45))
    assert h == pytest.approx(smp.proportion_effectsize(0.45, 0.30), abs=1e-12)


def test_all_zero_conversions_is_zero_variance() -> None:
    result = two_proportion_z_test(ProportionStats(100, 0), ProportionStats(100, 0))
    assert result.reason is Reason.ZERO_VARIANCE


def test_empty_arm_has_reason() -> None:
    assert two_proportion_z_test(ProportionStats(0, 0), ProportionStats(5, 1)).reason is (
        Reason.EMPTY_ARM
    )
    assert cohens_h(ProportionStats(0, 0), ProportionStats(5, 1)) is None


def test_proportion_stats_add() -> None:
    assert ProportionStats(10, 3) + ProportionStats(5, 2) == ProportionStats(15, 5)


def test_constant_zero_treatment_has_absolute_effect_but_no_relative_variance() -> None:
    result = two_proportion_z_test(ProportionStats(10, 3), ProportionStats(1, 0))
    assert result.absolute is not None
    assert result.relative is None and result.relative_reason is Reason.ZERO_VARIANCE


@pytest.mark.parametrize(("successes", "n"), [(1, 2), (0, 2), (2, 2), (0, 50), (17, 40), (9, 10)])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_wilson_interval_matches_statsmodels_and_stays_in_unit_range(
    successes: int, n: int, alpha: float
) -> None:
    ours = wilson_interval(ProportionStats(n, successes), alpha)
    lower, upper = smp.proportion_confint(successes, n, alpha=alpha, method="wilson")
    assert ours.lower == pytest.approx(lower, abs=1e-12)
    assert ours.upper == pytest.approx(upper, abs=1e-12)
    assert 0.0 <= ours.lower <= ours.upper <= 1.0


def test_the_n_2_rate_is_no_longer_minus_0_19_to_1_19_and_is_flagged() -> None:
    # Issue 11.9: one conversion out of two gave the Wald interval [-0.19, 1.19].
    metric = MetricInput(
        "conv", MetricType.PROPORTION, "control",
        {"control": ProportionStats(2, 1), "t": ProportionStats(2, 2)},
    )  # fmt: skip
    result = analyze_experiment([metric])
    control = result.metrics[0].variants[0]
    assert control.method is Method.WILSON
    assert control.ci_lower is not None and control.ci_upper is not None
    assert 0.0 < control.ci_lower < 0.5 < control.ci_upper < 1.0
    assert control.warnings == (Reason.SMALL_SAMPLE,)
    comp = result.metrics[0].comparisons[0]
    assert comp.absolute is not None  # Wald at n = 2: 0.5 -/+ 0.69 ...
    assert comp.absolute.ci_upper == pytest.approx(1.19, abs=0.005)
    assert comp.warnings == (Reason.SMALL_SAMPLE, Reason.OUTSIDE_NATURAL_RANGE)  # ... flagged


def test_few_conversions_flag_the_comparison_not_the_large_arms() -> None:
    metric = MetricInput(
        "conv", MetricType.PROPORTION, "control",
        {"control": ProportionStats(10_000, 3), "t": ProportionStats(10_000, 9)},
    )  # fmt: skip
    result = analyze_experiment([metric])
    assert all(v.warnings == () for v in result.metrics[0].variants)
    comp = result.metrics[0].comparisons[0]
    # 3 vs 9 conversions: a +200 % lift whose delta-method interval dips below -100 %.
    assert comp.relative is not None and comp.relative.ci_lower < -1.0
    assert comp.warnings == (Reason.SMALL_SAMPLE, Reason.OUTSIDE_NATURAL_RANGE)
    plenty = analyze_experiment([_with(metric, 300, 340)])
    assert plenty.metrics[0].comparisons[0].warnings == ()


def _with(metric: MetricInput, control: int, treatment: int) -> MetricInput:
    return MetricInput(
        metric.key, metric.metric_type, metric.control,
        {"control": ProportionStats(10_000, control), "t": ProportionStats(10_000, treatment)},
    )  # fmt: skip
