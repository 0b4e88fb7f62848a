"""The pooled two-proportion test: classic pooled z at 0, and the score interval inverting it.

References computed here: statsmodels' pooled z-test (``proportions_ztest`` and the score
test at 0, which share the pooled shortcut), and, for the interval, the restricted maximum
likelihood found numerically from the binomial likelihood and the Farrington-Manning
statistic rebuilt from it. statsmodels' own score interval is not a reference for non-zero
nulls: its constrained MLE has a wrong linear coefficient (statsmodels issue #10269), which
``test_statsmodels_restricted_mle_is_off_where_ours_maximises_the_likelihood`` shows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats import proportion as smp

from verdict_analysis.stats import (
    ProportionStats,
    ProportionTest,
    SequentialDesign,
    Sides,
    two_proportion_z_test,
)
from verdict_analysis.stats.score import restricted_rates

CASES = [(1000, 10_000, 1085, 10_000), (120, 1000, 150, 1010), (33, 400, 21, 390),
         (0, 20, 5, 20), (1, 3, 2, 2), (3, 40, 0, 35), (7, 34, 1, 34)]  # fmt: skip
ALT = {Sides.TWO_SIDED: "two-sided", Sides.GREATER: "larger", Sides.LESS: "smaller"}


def _likelihood_mle(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> float:
    """Restricted MLE of p_t under p_t - p_c = delta, by bounded numerical maximisation."""

    def nll(p_t: float) -> float:
        p_c = p_t - delta
        terms = [(x_t, p_t), (n_t - x_t, 1 - p_t), (x_c, p_c), (n_c - x_c, 1 - p_c)]
        return -sum(k * math.log(p) for k, p in terms if k > 0)

    lo, hi = max(0.0, delta) + 1e-12, min(1.0, 1.0 + delta) - 1e-12
    return float(optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                                          options={"xatol": 1e-13}).x)  # fmt: skip


def _reference_z(x_t: int, n_t: int, x_c: int, n_c: int, delta: float) -> float:
    p_t = _likelihood_mle(x_t, n_t, x_c, n_c, delta)
    p_c = p_t - delta
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    return (x_t / n_t - x_c / n_c - delta) / se


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t"), CASES)
@pytest.mark.parametrize("sides", list(Sides))
def test_p_value_is_the_classic_pooled_z_test(
    x_c: int, n_c: int, x_t: int, n_t: int, sides: Sides
) -> None:
    result = two_proportion_z_test(
        ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), sides=sides,
        test=ProportionTest.POOLED,
    )  # fmt: skip
    assert result.absolute is not None
    _, pooled = smp.proportions_ztest([x_t, x_c], [n_t, n_c], alternative=ALT[sides])
    with np.errstate(divide="ignore", invalid="ignore"):  # its odds ratio at a 0 or 1 rate
        score = smp.test_proportions_2indep(
            x_t, n_t, x_c, n_c, method="score", correction=False, alternative=ALT[sides]
        ).pvalue
    assert result.absolute.p_value == pytest.approx(pooled, rel=1e-9)
    assert result.absolute.p_value == pytest.approx(score, rel=1e-9)


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t"), CASES)
@pytest.mark.parametrize("delta", [-0.3, -0.02, 0.004, 0.05, 0.4])
def test_restricted_rates_maximise_the_likelihood(
    x_c: int, n_c: int, x_t: int, n_t: int, delta: float
) -> None:
    rate_t, rate_c = restricted_rates(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), delta)
    assert rate_t - rate_c == pytest.approx(delta, abs=1e-12)
    assert rate_t == pytest.approx(_likelihood_mle(x_t, n_t, x_c, n_c, delta), abs=2e-7)


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t"), CASES)
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_score_interval_bounds_are_where_the_statistic_hits_the_critical_value(
    x_c: int, n_c: int, x_t: int, n_t: int, alpha: float
) -> None:
    result = two_proportion_z_test(
        ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), alpha=alpha,
        test=ProportionTest.POOLED,
    )  # fmt: skip
    assert result.absolute is not None
    c = sps.norm.isf(alpha / 2)
    lower, upper = result.absolute.ci_lower, result.absolute.ci_upper
    for bound, target in ((lower, c), (upper, -c)):
        if -1.0 + 1e-9 < bound < 1.0 - 1e-9:
            assert _reference_z(x_t, n_t, x_c, n_c, bound) == pytest.approx(target, abs=2e-5)
    # And the statistic is inside (-c, c) strictly between them, outside beyond them.
    mid = result.absolute.estimate
    assert abs(_reference_z(x_t, n_t, x_c, n_c, mid)) < c
    assert result.absolute.interval.excludes(0.0) == (result.absolute.p_value <= alpha)


def test_statsmodels_restricted_mle_is_off_where_ours_maximises_the_likelihood() -> None:
    # Why statsmodels' score interval is not used as the reference (issue #10269).
    x_c, n_c, x_t, n_t, delta = 1000, 10_000, 1085, 10_000, 0.017
    ref = smp.score_test_proportions_2indep(
        x_t, n_t, x_c, n_c, value=delta, compare="diff", correction=False, return_results=True
    )
    ours, _ = restricted_rates(ProportionStats(n_c, x_c), ProportionStats(n_t, x_t), delta)
    best = _likelihood_mle(x_t, n_t, x_c, n_c, delta)
    assert abs(ours - best) < 1e-7 < abs(ref.prop1_null - best)


def test_one_sided_pooled_interval_is_one_bound_of_the_one_sided_test() -> None:
    c, t = ProportionStats(10_000, 1000), ProportionStats(10_000, 1085)
    greater = two_proportion_z_test(c, t, sides=Sides.GREATER, test=ProportionTest.POOLED)
    assert greater.absolute is not None
    assert greater.absolute.ci_upper == math.inf
    z = sps.norm.isf(0.05)
    assert _reference_z(1085, 10_000, 1000, 10_000, greater.absolute.ci_lower) == pytest.approx(
        z, abs=2e-5
    )


def test_sequential_pooled_pair_uses_the_mixture_boundary_on_the_score_statistic() -> None:
    c, t = ProportionStats(20_000, 2000), ProportionStats(20_000, 2250)
    design = SequentialDesign()
    result = two_proportion_z_test(c, t, sequential=design, test=ProportionTest.POOLED)
    wald = two_proportion_z_test(c, t, sequential=design)
    assert result.absolute is not None and wald.absolute is not None
    seq = result.absolute.sequential_interval
    assert seq is not None and result.absolute.sequential_p_value is not None
    # Wider than the fixed score interval, and near the Wald sequence at this sample size.
    assert seq.lower < result.absolute.ci_lower and seq.upper > result.absolute.ci_upper
    assert seq.lower == pytest.approx(wald.absolute.sequential_ci_lower, abs=5e-4)
    assert seq.excludes(0.0) == (result.absolute.sequential_p_value <= 0.05)


def test_relative_lift_keeps_the_delta_method_under_the_pooled_test() -> None:
    c, t = ProportionStats(1000, 100), ProportionStats(1000, 120)
    pooled = two_proportion_z_test(c, t, test=ProportionTest.POOLED)
    unpooled = two_proportion_z_test(c, t)
    assert pooled.relative == unpooled.relative
