"""CUPED for means and ratios, theta pooled across arms."""

import numpy as np
import pytest
import statsmodels.api as sm

from verdict_analysis.stats import (
    CupedStats,
    RatioCupedStats,
    Reason,
    cuped_test,
    cuped_theta,
    ratio_cuped_test,
    ratio_cuped_theta,
    ratio_test,
    welch_t_test,
)


def _data(seed: int, n: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 2.0, n)
    y = 1.0 + 0.8 * x + rng.normal(0.0, 1.0, n) + lift
    return y, x


def test_adjusted_difference_equals_ols_treatment_coefficient() -> None:
    yc, xc = _data(1, 300, 0.0)
    yt, xt = _data(2, 350, 0.2)
    y = np.concatenate([yc, yt])
    design = np.column_stack([np.ones(y.size), np.r_[np.zeros(300), np.ones(350)], np.r_[xc, xt]])
    fit = sm.OLS(y, design).fit(cov_type="HC0")
    c, t = CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt)
    result = cuped_test(c, t)
    assert result.absolute is not None
    assert cuped_theta([c, t]) == pytest.approx(fit.params[2], abs=1e-9)
    assert result.absolute.estimate == pytest.approx(fit.params[1], abs=1e-9)
    # Same asymptotic variance as the heteroskedasticity-robust OLS one (theta treated as known).
    assert result.absolute.std_error == pytest.approx(fit.bse[1], rel=0.02)


def test_cuped_reduces_the_standard_error() -> None:
    yc, xc = _data(3, 500, 0.0)
    yt, xt = _data(4, 500, 0.1)
    c, t = CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt)
    adjusted, raw = cuped_test(c, t), welch_t_test(c.outcome, t.outcome)
    assert adjusted.absolute is not None and raw.absolute is not None
    assert adjusted.absolute.std_error < 0.6 * raw.absolute.std_error


def test_constant_covariate_means_no_adjustment() -> None:
    yc, _ = _data(5, 100, 0.0)
    yt, _ = _data(6, 100, 0.0)
    c = CupedStats.from_values(yc, np.ones(100))
    t = CupedStats.from_values(yt, np.ones(100))
    assert cuped_theta([c, t]) == 0.0
    adjusted, raw = cuped_test(c, t), welch_t_test(c.outcome, t.outcome)
    assert adjusted.absolute is not None and raw.absolute is not None
    assert adjusted.absolute.estimate == pytest.approx(raw.absolute.estimate)
    assert adjusted.absolute.std_error == pytest.approx(raw.absolute.std_error)


def test_empty_arm_is_reported() -> None:
    yc, xc = _data(7, 50, 0.0)
    result = cuped_test(CupedStats(0, 0, 0, 0, 0, 0), CupedStats.from_values(yc, xc))
    assert result.reason is Reason.EMPTY_ARM


def _ratio_units(seed: int, n: int, rate: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    propensity = rng.beta(2, 5, n)
    pre_den = rng.poisson(30.0, n) + 1.0
    pre_num = rng.binomial(pre_den.astype(int), propensity).astype(float)
    den = rng.poisson(30.0, n) + 1.0
    num = rng.binomial(den.astype(int), np.clip(propensity + rate, 0, 1)).astype(float)
    return num, den, pre_num, pre_den


def test_ratio_cuped_theta_is_the_slope_of_linearised_variables() -> None:
    arms = [RatioCupedStats.from_values(*_ratio_units(s, 800, 0.0)) for s in (8, 9)]
    lin_r, lin_p = [], []
    for seed in (8, 9):
        a, b, c, d = _ratio_units(seed, 800, 0.0)
        r, p = a.sum() / b.sum(), c.sum() / d.sum()
        lin_r.append((a - r * b) / b.mean())
        lin_p.append((c - p * d) / d.mean())
    num = sum(np.cov(x, z, ddof=1)[0, 1] * 799 for x, z in zip(lin_r, lin_p, strict=True))
    den = sum(np.var(z, ddof=1) * 799 for z in lin_p)
    assert ratio_cuped_theta(arms) == pytest.approx(num / den, rel=1e-9)


def test_ratio_cuped_reduces_standard_error_and_keeps_the_estimate_close() -> None:
    c = RatioCupedStats.from_values(*_ratio_units(10, 2000, 0.0))
    t = RatioCupedStats.from_values(*_ratio_units(11, 2000, 0.02))
    adjusted, raw = ratio_cuped_test(c, t), ratio_test(c.outcome, t.outcome)
    assert adjusted.absolute is not None and raw.absolute is not None
    assert adjusted.absolute.std_error < 0.9 * raw.absolute.std_error
    assert abs(adjusted.absolute.estimate - raw.absolute.estimate) < 2 * raw.absolute.std_error


def test_ratio_cuped_without_pre_period_falls_back_to_plain_ratio() -> None:
    a, b, _, _ = _ratio_units(12, 300, 0.0)
    zeros = np.zeros(300)
    c = RatioCupedStats.from_values(a, b, zeros, zeros)
    a2, b2, _, _ = _ratio_units(13, 300, 0.0)
    t = RatioCupedStats.from_values(a2, b2, zeros, zeros)
    adjusted, raw = ratio_cuped_test(c, t), ratio_test(c.outcome, t.outcome)
    assert adjusted.absolute is not None and raw.absolute is not None
    assert adjusted.absolute.estimate == pytest.approx(raw.absolute.estimate)
    assert adjusted.absolute.std_error == pytest.approx(raw.absolute.std_error)
