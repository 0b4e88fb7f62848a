"""CUPED: regression adjustment on a pre-exposure covariate, theta pooled across arms.

Deng, Xu, Kohavi & Walker (2013) "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data", WSDM. For a mean,

    y_adj(arm) = mean_y(arm) - theta * (mean_x(arm) - mean_x(all arms))
    theta      = sum_arms S_xy / sum_arms S_xx         (pooled within-arm regression)
    Var        = ( s_y^2 - 2 theta s_xy + theta^2 s_x^2 ) / n

For a ratio metric ``R = sum a / sum b`` with covariate ``P = sum c / sum d`` (the same
ratio before exposure), both are linearised by the delta method (Deng, Knoblich & Lu
2018, section 3.3) and the same formulas apply to the linearised variables:
``theta = pooled Cov(R, P) / pooled Var(P)``. Theta pooled over arms keeps the
difference unbiased under randomisation (the ``mean_x(all arms)`` terms cancel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .effects import ArmEstimate, TestResult, compare
from .methods import Method
from .plan import SequentialDesign, Sides
from .ratio import ratio_arm
from .reasons import Reason
from .sufficient import CupedStats, RatioCupedStats

__all__ = [
    "cuped_arm",
    "cuped_arms",
    "cuped_test",
    "cuped_theta",
    "ratio_cuped_arm",
    "ratio_cuped_arms",
    "ratio_cuped_test",
    "ratio_cuped_theta",
]

_RELATIVE_ZERO = 1e-12


def _centered(n: int, s_a: float, s_b: float, s_ab: float) -> float:
    return s_ab - s_a * s_b / n


def cuped_theta(arms: Sequence[CupedStats]) -> float:
    """Pooled within-arm slope of ``y`` on ``x``; 0 when ``x`` does not vary."""
    s_xy = sum(_centered(a.n_units, a.sum_x, a.sum_y, a.sum_xy) for a in arms if a.n_units > 0)
    s_xx = sum(_centered(a.n_units, a.sum_x, a.sum_x, a.sum_x_sq) for a in arms if a.n_units > 0)
    if s_xx <= _RELATIVE_ZERO * sum(abs(a.sum_x_sq) for a in arms):
        return 0.0
    return s_xy / s_xx


def cuped_arm(stats: CupedStats, theta: float, pooled_x_mean: float) -> ArmEstimate | Reason:
    """Adjusted arm mean and its variance."""
    n = stats.n_units
    if n <= 0:
        return Reason.EMPTY_ARM
    if n < 2:
        return Reason.INSUFFICIENT_DATA
    var_y = _centered(n, stats.sum_y, stats.sum_y, stats.sum_y_sq) / (n - 1)
    var_x = _centered(n, stats.sum_x, stats.sum_x, stats.sum_x_sq) / (n - 1)
    cov = _centered(n, stats.sum_x, stats.sum_y, stats.sum_xy) / (n - 1)
    variance = var_y - 2.0 * theta * cov + theta * theta * var_x
    scale = (abs(stats.sum_y_sq) + theta * theta * abs(stats.sum_x_sq)) / n
    if variance <= _RELATIVE_ZERO * scale:
        variance = 0.0
    mean = stats.sum_y / n - theta * (stats.sum_x / n - pooled_x_mean)
    return ArmEstimate(n, mean, variance / n)


def _pooled_x_mean(arms: Sequence[CupedStats]) -> float:
    n = sum(a.n_units for a in arms)
    return sum(a.sum_x for a in arms) / n if n > 0 else 0.0


def cuped_arms(arms: Sequence[CupedStats]) -> list[ArmEstimate | Reason]:
    """Adjust every arm of one metric with a theta pooled over all of them."""
    theta, x_bar = cuped_theta(arms), _pooled_x_mean(arms)
    return [cuped_arm(a, theta, x_bar) for a in arms]


def cuped_test(
    control: CupedStats,
    treatment: CupedStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """CUPED-adjusted z-test of two means."""
    return _test(cuped_arms([control, treatment]), alpha, sides, sequential, Method.CUPED_Z)


def _test(
    arms: list[ArmEstimate | Reason],
    alpha: float,
    sides: Sides,
    sequential: SequentialDesign | None,
    method: Method,
) -> TestResult:
    arm_c, arm_t = arms
    if isinstance(arm_c, Reason):
        return TestResult(None, None, arm_c, arm_c)
    if isinstance(arm_t, Reason):
        return TestResult(None, None, arm_t, arm_t)
    return compare(arm_c, arm_t, alpha=alpha, sides=sides, sequential=sequential, method=method)


def _linearised(stats: RatioCupedStats) -> tuple[float, float, float, float, float] | None:
    """``(R, P, Var R, Var P, Cov(R, P))`` per unit, or ``None`` for a zero denominator."""
    k = stats.n_units
    sums, cross = stats.moments()
    if sums[1] == 0.0 or sums[3] == 0.0:
        return None
    mu = sums / k
    cov = (cross - np.outer(sums, sums) / k) / (k - 1)
    r, p = mu[0] / mu[1], mu[2] / mu[3]
    g = np.array([1.0 / mu[1], -r / mu[1], 0.0, 0.0])
    h = np.array([0.0, 0.0, 1.0 / mu[3], -p / mu[3]])
    cg, ch = cov @ g, cov @ h
    return float(r), float(p), float(g @ cg), float(h @ ch), float(g @ ch)


def ratio_cuped_theta(arms: Sequence[RatioCupedStats]) -> float:
    """Pooled within-arm slope of the linearised ratio on the linearised pre-period ratio."""
    num = den = 0.0
    for arm in arms:
        if arm.n_units < 2:
            continue
        lin = _linearised(arm)
        if lin is None:
            return 0.0
        num += (arm.n_units - 1) * lin[4]
        den += (arm.n_units - 1) * lin[3]
    return num / den if den > 0.0 else 0.0


def ratio_cuped_arm(
    stats: RatioCupedStats, theta: float, pooled_pre_ratio: float
) -> ArmEstimate | Reason:
    """Adjusted ratio ``R - theta (P - P_all)`` and its variance."""
    if stats.n_units <= 0:
        return Reason.EMPTY_ARM
    if stats.n_units < 2:
        return Reason.INSUFFICIENT_DATA
    if stats.sum_den == 0.0:
        return Reason.ZERO_DENOMINATOR
    lin = _linearised(stats)
    if lin is None:  # no pre-period denominator here, so theta is 0 for every arm
        return ratio_arm(stats.outcome)
    r, p, var_r, var_p, cov_rp = lin
    variance = var_r - 2.0 * theta * cov_rp + theta * theta * var_p
    if variance <= _RELATIVE_ZERO * (abs(var_r) + theta * theta * abs(var_p)):
        variance = 0.0
    return ArmEstimate(stats.n_units, r - theta * (p - pooled_pre_ratio), variance / stats.n_units)


def ratio_cuped_arms(arms: Sequence[RatioCupedStats]) -> list[ArmEstimate | Reason]:
    """Adjust every arm of one ratio metric with a theta pooled over all of them."""
    theta = ratio_cuped_theta(arms)
    pre_den = sum(a.sum_pre_den for a in arms)
    pooled = sum(a.sum_pre_num for a in arms) / pre_den if pre_den != 0.0 else 0.0
    return [ratio_cuped_arm(a, theta, pooled) for a in arms]


def ratio_cuped_test(
    control: RatioCupedStats,
    treatment: RatioCupedStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """CUPED-adjusted delta-method z-test of two clustered ratios."""
    arms = ratio_cuped_arms([control, treatment])
    return _test(arms, alpha, sides, sequential, Method.CUPED_RATIO_DELTA_METHOD)
