"""Proportions: two-proportion z-test, absolute and relative lift, Cohen's h.

Intervals use the unpooled (Wald) variance ``p(1-p)/n`` per arm and the relative lift
the delta method (see :mod:`.effects`). With ``pooled=True`` the fixed-horizon p-value
of the absolute effect uses the pooled null variance ``p(1-p)(1/n_c + 1/n_t)`` of the
classic z-test (Fleiss, Levin & Paik 2003, ch. 4), as ``statsmodels``'
``proportions_ztest``. Cohen (1988) for ``h = 2 asin sqrt(p_t) - 2 asin sqrt(p_c)``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ._numeric import tail_p_value
from .effects import ArmEstimate, TestResult, compare
from .plan import SequentialDesign, Sides
from .sufficient import ProportionStats

__all__ = ["cohens_h", "proportion_arm", "two_proportion_z_test"]


def proportion_arm(stats: ProportionStats) -> ArmEstimate:
    """Arm estimate of a conversion rate (normal reference distribution)."""
    if stats.n <= 0:
        return ArmEstimate(0, 0.0, 0.0)
    return ArmEstimate(stats.n, stats.mean, stats.variance / stats.n)


def two_proportion_z_test(
    control: ProportionStats,
    treatment: ProportionStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
    pooled: bool = False,
) -> TestResult:
    """Two-proportion z-test of ``treatment`` against ``control``."""
    result = compare(
        proportion_arm(control),
        proportion_arm(treatment),
        alpha=alpha,
        sides=sides,
        sequential=sequential,
    )
    if not pooled or result.absolute is None:
        return result
    p = (control.successes + treatment.successes) / (control.n + treatment.n)
    se = math.sqrt(p * (1.0 - p) * (1.0 / control.n + 1.0 / treatment.n))
    z = result.absolute.estimate / se
    absolute = replace(result.absolute, p_value=tail_p_value(z, math.inf, sides.value))
    return replace(result, absolute=absolute)


def cohens_h(control: ProportionStats, treatment: ProportionStats) -> float | None:
    """Arcsine effect size; ``None`` when an arm is empty."""
    if control.n <= 0 or treatment.n <= 0:
        return None
    return 2.0 * math.asin(math.sqrt(treatment.mean)) - 2.0 * math.asin(math.sqrt(control.mean))
