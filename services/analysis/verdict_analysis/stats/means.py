"""Means: Welch's t-test on per-unit values, absolute and relative effects, Cohen's d.

Welch (1947) "The generalization of Student's problem when several different
population variances are involved"; Satterthwaite (1946) for the degrees of freedom
``df = (v_c + v_t)^2 / (v_c^2/(n_c-1) + v_t^2/(n_t-1))`` with ``v = s^2/n``. The
relative interval uses the delta method (see :mod:`.effects`). Cohen (1988) for ``d``.
"""

from __future__ import annotations

import math

from .effects import ArmEstimate, TestResult, compare
from .plan import SequentialDesign, Sides
from .sufficient import SampleStats

__all__ = ["cohens_d", "mean_arm", "welch_t_test"]


def mean_arm(stats: SampleStats) -> ArmEstimate:
    """Arm estimate of a per-unit mean (``df = n - 1`` for Welch)."""
    if stats.n <= 0:
        return ArmEstimate(0, 0.0, 0.0, 0.0)
    return ArmEstimate(stats.n, stats.mean, stats.variance / stats.n, float(stats.n - 1))


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
        mean_arm(control), mean_arm(treatment), alpha=alpha, sides=sides, sequential=sequential
    )


def cohens_d(control: SampleStats, treatment: SampleStats) -> float | None:
    """Standardised mean difference with the pooled standard deviation; ``None`` if undefined."""
    dof = control.n + treatment.n - 2
    if control.n < 2 or treatment.n < 2:
        return None
    pooled = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / dof
    if pooled <= 0.0:
        return None
    return (treatment.mean - control.mean) / math.sqrt(pooled)
