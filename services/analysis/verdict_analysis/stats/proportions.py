"""Proportions: two-proportion tests, absolute and relative lift, Wilson intervals, Cohen's h.

* ``UNPOOLED`` (default): Wald z with the unpooled variance ``p(1-p)/n`` per arm; its
  interval is ``d -/+ z se`` (statsmodels ``confint_proportions_2indep(method="wald")``).
* ``POOLED``: the score test of :mod:`.score`, whose value at 0 is the classic pooled
  z-test (Fleiss, Levin & Paik 2003, ch. 4; statsmodels ``proportions_ztest``) and whose
  interval is the Farrington-Manning score interval that inverts it.

The relative lift uses the delta method in both cases (see :mod:`.effects`). The rate of
one arm gets the Wilson (1927) score interval, which stays inside [0, 1] at any ``n``.
Cohen (1988) for ``h = 2 asin sqrt(p_t) - 2 asin sqrt(p_c)``.
"""

from __future__ import annotations

import math

from ._numeric import normal_quantile
from .effects import ArmEstimate, TestResult, build_effect, compare, mixture_for
from .interval import Interval
from .methods import Method
from .plan import ProportionTest, SequentialDesign, Sides
from .reasons import Reason
from .score import ScoreInference
from .sufficient import ProportionStats

__all__ = [
    "cohens_h",
    "cohens_h_reason",
    "proportion_arm",
    "two_proportion_z_test",
    "wilson_interval",
]


def proportion_arm(stats: ProportionStats) -> ArmEstimate:
    """Arm estimate of a conversion rate (normal reference distribution)."""
    if stats.n_units <= 0:
        return ArmEstimate(0, 0.0, 0.0)
    return ArmEstimate(stats.n_units, stats.mean, stats.variance / stats.n_units)


def two_proportion_z_test(
    control: ProportionStats,
    treatment: ProportionStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
    test: ProportionTest = ProportionTest.UNPOOLED,
) -> TestResult:
    """Two-proportion test of ``treatment`` against ``control`` (``test`` picks the variance)."""
    result = compare(
        proportion_arm(control),
        proportion_arm(treatment),
        alpha=alpha,
        sides=sides,
        sequential=sequential,
        method=Method.Z_UNPOOLED,
    )
    if test is ProportionTest.UNPOOLED or result.absolute is None:
        return result
    mixture = mixture_for(sequential, alpha, sides, control.n_units + treatment.n_units)
    score = ScoreInference(control, treatment, result.absolute.std_error, sides, mixture)
    return TestResult(build_effect(score, alpha), result.relative, None, result.relative_reason)


def wilson_interval(stats: ProportionStats, alpha: float = 0.05) -> Interval:
    """Two-sided ``1 - alpha`` Wilson score interval of one arm's rate (``n_units > 0``)."""
    n, p = stats.n_units, stats.mean
    z = normal_quantile(1.0 - alpha / 2.0)
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def cohens_h(control: ProportionStats, treatment: ProportionStats) -> float | None:
    """Arcsine effect size; ``None`` when an arm is empty."""
    if control.n_units <= 0 or treatment.n_units <= 0:
        return None
    return 2.0 * math.asin(math.sqrt(treatment.mean)) - 2.0 * math.asin(math.sqrt(control.mean))


def cohens_h_reason(control: ProportionStats, treatment: ProportionStats) -> Reason | None:
    """Why :func:`cohens_h` is undefined, or ``None``."""
    return Reason.EMPTY_ARM if control.n_units <= 0 or treatment.n_units <= 0 else None
