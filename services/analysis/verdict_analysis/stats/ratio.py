"""Ratio metrics clustered by unit (e.g. thumbs-up per response) by the delta method.

With ``K`` units, per-unit sums ``a_u`` (numerator) and ``b_u`` (denominator) and
``R = sum a / sum b``, the first-order (delta-method) variance is

    Var(R) = ( s_a^2 - 2 R s_ab + R^2 s_b^2 ) / ( K * mean(b)^2 )

where ``s^2`` and ``s_ab`` are the sample variances and covariance over units. Using
units, not events, as the sampling unit keeps the variance valid when events of the
same user are correlated. Deng, Knoblich & Lu (2018) "Applying the delta method in
metric analytics: a practical guide with novel ideas", KDD, section 3.
"""

from __future__ import annotations

from .effects import ArmEstimate, TestResult, compare
from .methods import Method
from .plan import SequentialDesign, Sides
from .reasons import Reason
from .sufficient import RatioStats

__all__ = ["ratio_arm", "ratio_test", "ratio_unit_variance"]

_RELATIVE_ZERO = 1e-12


def ratio_unit_variance(stats: RatioStats) -> float:
    """Per-unit variance of the linearised ratio ``(a_u - R b_u) / mean(b)``."""
    k = stats.n_units
    mean_den = stats.sum_den / k
    r = stats.sum_num / stats.sum_den
    var_a = (stats.sum_num_sq - stats.sum_num * (stats.sum_num / k)) / (k - 1)
    var_b = (stats.sum_den_sq - stats.sum_den * (stats.sum_den / k)) / (k - 1)
    cov = (stats.sum_num_den - stats.sum_num * stats.sum_den / k) / (k - 1)
    raw = var_a - 2.0 * r * cov + r * r * var_b
    scale = abs(stats.sum_num_sq) / k + r * r * abs(stats.sum_den_sq) / k
    if raw <= _RELATIVE_ZERO * scale:
        return 0.0
    return raw / mean_den / mean_den


def ratio_arm(stats: RatioStats) -> ArmEstimate | Reason:
    """Arm estimate of a clustered ratio, or why there is none."""
    if stats.n_units <= 0:
        return Reason.EMPTY_ARM
    if stats.n_units < 2:
        return Reason.INSUFFICIENT_DATA
    if stats.sum_den == 0.0:
        return Reason.ZERO_DENOMINATOR
    variance = ratio_unit_variance(stats)
    return ArmEstimate(stats.n_units, stats.ratio, variance / stats.n_units)


def ratio_test(
    control: RatioStats,
    treatment: RatioStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """Delta-method z-test of two clustered ratios."""
    arm_c, arm_t = ratio_arm(control), ratio_arm(treatment)
    if isinstance(arm_c, Reason):
        return TestResult(None, None, arm_c, arm_c)
    if isinstance(arm_t, Reason):
        return TestResult(None, None, arm_t, arm_t)
    return compare(
        arm_c, arm_t, alpha=alpha, sides=sides, sequential=sequential,
        method=Method.RATIO_DELTA_METHOD,
    )  # fmt: skip
