"""Welch t-test, relative effect by the delta method, Cohen's d."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from verdict_analysis.stats import (
    Reason,
    SampleStats,
    SequentialDesign,
    Sides,
    cohens_d,
    welch_t_test,
)

CONTROL = SampleStats(n_units=3407, sum=1396.87, sum_sq=52377.9767)
TREATMENT = SampleStats(n_units=3461, sum=2422.7, sum_sq=134698.29)


def test_published_relative_lift_matches_gbstats_golden_values() -> None:
    result = welch_t_test(CONTROL, TREATMENT)
    assert result.relative is not None
    assert round(result.relative.estimate, 5) == 0.70732
    assert round(result.relative.ci_lower, 5) == -0.03526
    assert round(result.relative.ci_upper, 5) == 1.44989
    assert round(result.relative.p_value, 5) == 0.06191


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("sides", list(Sides))
def test_absolute_effect_matches_statsmodels_welch(seed: int, sides: Sides) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(10.0, 3.0, 40 + seed)
    b = rng.normal(10.8, 5.0, 70 + 3 * seed)
    result = welch_t_test(SampleStats.from_values(a), SampleStats.from_values(b), sides=sides)
    assert result.absolute is not None
    alt = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[sides.value]
    cm = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    _t, p, df = cm.ttest_ind(usevar="unequal", alternative=alt)
    lower, upper = cm.tconfint_diff(alpha=0.05, usevar="unequal", alternative=alt)
    assert result.absolute.estimate == pytest.approx(b.mean() - a.mean(), abs=1e-9)
    assert result.absolute.p_value == pytest.approx(p, abs=1e-6)
    assert result.absolute.df == pytest.approx(df, rel=1e-6)
    assert result.absolute.ci_lower == pytest.approx(lower, abs=1e-6)
    assert result.absolute.ci_upper == pytest.approx(upper, abs=1e-6)
    scipy_p = sps.ttest_ind(
        b,
        a,
        equal_var=False,
        alternative=alt.replace("larger", "greater").replace("smaller", "less"),
    ).pvalue
    assert result.absolute.p_value == pytest.approx(scipy_p, abs=1e-6)


def test_stats_add_like_concatenated_shards() -> None:
    rng = np.random.default_rng(7)
    x = rng.exponential(2.0, 500)
    merged = SampleStats.from_values(x[:200]) + SampleStats.from_values(x[200:])
    whole = SampleStats.from_values(x)
    assert merged.n_units == whole.n_units
    assert merged.sum == pytest.approx(whole.sum)
    assert merged.variance == pytest.approx(np.var(x, ddof=1))


def test_cohens_d_uses_pooled_standard_deviation() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 1, 50), rng.normal(0.5, 1.5, 80)
    pooled = math.sqrt(((49) * a.var(ddof=1) + 79 * b.var(ddof=1)) / 128)
    d = cohens_d(SampleStats.from_values(a), SampleStats.from_values(b))
    assert d == pytest.approx((b.mean() - a.mean()) / pooled, rel=1e-9)


def test_empty_arm_returns_reason_not_exception() -> None:
    result = welch_t_test(SampleStats(0, 0.0, 0.0), TREATMENT)
    assert result.absolute is None and result.relative is None
    assert result.reason is Reason.EMPTY_ARM


def test_single_unit_arm_is_insufficient_data() -> None:
    assert welch_t_test(SampleStats(1, 2.0, 4.0), TREATMENT).reason is Reason.INSUFFICIENT_DATA


def test_constant_values_in_both_arms_is_zero_variance() -> None:
    constant = SampleStats.from_values(np.full(100, 0.1))
    other = SampleStats.from_values(np.full(120, 0.3))
    result = welch_t_test(constant, other)
    assert result.reason is Reason.ZERO_VARIANCE
    assert cohens_d(constant, other) is None


def test_zero_control_mean_keeps_absolute_and_explains_relative() -> None:
    control = SampleStats.from_values([-1.0, 1.0, -2.0, 2.0])
    result = welch_t_test(control, TREATMENT)
    assert result.absolute is not None
    assert result.relative is None
    assert result.relative_reason is Reason.CONTROL_MEAN_ZERO


def test_one_sided_interval_is_open_on_the_far_side() -> None:
    result = welch_t_test(CONTROL, TREATMENT, sides=Sides.GREATER)
    assert result.absolute is not None
    assert result.absolute.ci_upper == math.inf
    assert result.absolute.ci_lower < result.absolute.estimate


def test_sequential_interval_is_wider_and_p_value_larger() -> None:
    result = welch_t_test(CONTROL, TREATMENT, sequential=SequentialDesign())
    eff = result.absolute
    assert eff is not None and eff.sequential_ci_lower is not None
    assert eff.sequential_ci_upper is not None and eff.sequential_p_value is not None
    assert eff.sequential_ci_lower < eff.ci_lower
    assert eff.sequential_ci_upper > eff.ci_upper
    assert eff.sequential_p_value > eff.p_value
