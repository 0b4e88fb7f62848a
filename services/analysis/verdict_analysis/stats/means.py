"""Means: Welch's t-test on per-unit values, absolute and relative effects, Cohen's d.

Welch (1947) "The generalization of Student's problem when several different
population variances are involved"; Satterthwaite (1946) for the degrees of freedom
``df = (v_c + v_t)^2 / (v_c^2/(n_c-1) + v_t^2/(n_t-1))`` with ``v = s^2/n``. The
relative interval uses the delta method (see :mod:`.effects`). Cohen (1988) for ``d``.
"""

from __future__ import annotations

import math

from .effects import ArmEstimate, TestResult, compare
from .methods import Method
from .plan import SequentialDesign, Sides
from .reasons import Reason
from .sufficient import SampleStats

__all__ = ["cohens_d", "cohens_d_reason", "mean_arm", "welch_t_test"]


def mean_arm(stats: SampleStats) -> ArmEstimate:
    """Arm estimate of a per-unit mean (``df = n - 1`` for Welch)."""
    n = stats.n_units
    if n <= 0:
        return ArmEstimate(0, 0.0, 0.0, 0.0)
    return ArmEstimate(n, stats.mean, stats.variance / n, float(n - 1))


def welch_t_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """Welch's unequal-variance t-test of ``treatment`` against ``control``."""
    return compare(
        mean_arm(control),
        mean_arm(treatment),
        alpha=alpha,
        sides=sides,
        sequential=sequential,
        method=Method.WELCH_T,
    )


def cohens_d(control: SampleStats, treatment: SampleStats) -> float | None:
    """Standardised mean difference with the pooled standard deviation; ``None`` if undefined
    (:func:`cohens_d_reason` says why)."""
    if cohens_d_reason(control, treatment) is not None:
        return None
    n_c, n_t = control.n_units, treatment.n_units
    pooled = ((n_c - 1) * control.variance + (n_t - 1) * treatment.variance) / (n_c + n_t - 2)
    return (treatment.mean - control.mean) / math.sqrt(pooled)


def cohens_d_reason(control: SampleStats, treatment: SampleStats) -> Reason | None:
    """Why :func:`cohens_d` is undefined, or ``None`` when it is defined."""
    if control.n_units <= 0 or treatment.n_units <= 0:
        return Reason.EMPTY_ARM
    if control.n_units < 2 or treatment.n_units < 2:
        return Reason.INSUFFICIENT_DATA
    n_c, n_t = control.n_units, treatment.n_units
    pooled = ((n_c - 1) * control.variance + (n_t - 1) * treatment.variance) / (n_c + n_t - 2)
    if not math.isfinite(pooled) or not math.isfinite(treatment.mean - control.mean):
        return Reason.INVALID_INPUT
    return Reason.ZERO_VARIANCE if pooled <= 0.0 else None
