"""Shared inference for a difference of two arm estimates: absolute and relative effects.

Each method reduces an arm to an :class:`ArmEstimate` (a point estimate, the variance
of that estimate, and degrees of freedom) and :func:`compare` does the rest:

* absolute effect ``d = m_t - m_c``, ``Var(d) = v_t + v_c`` (``v`` = variance of the mean);
* relative effect ``r = m_t / m_c - 1`` with the delta-method variance
  ``v_t / m_c^2 + m_t^2 v_c / m_c^4`` (Deng, Knoblich & Lu 2018, "Applying the delta
  method in metric analytics", KDD);
* Student's t with Welch-Satterthwaite degrees of freedom when both arms carry
  finite ``df`` (Welch 1947; Satterthwaite 1946), otherwise the normal distribution;
  the relative effect uses the same ``df`` (gbstats' convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ._numeric import critical_value, tail_p_value
from .plan import SequentialDesign, Sides
from .reasons import Reason
from .sequential import anytime_p_value, confidence_sequence_halfwidth, mixture_rho

__all__ = [
    "ArmEstimate",
    "Effect",
    "TestResult",
    "adjusted_interval",
    "compare",
    "effect_interval",
]

_INF = math.inf


@dataclass(frozen=True)
class ArmEstimate:
    """One arm reduced to a point estimate and the variance of that estimate."""

    n: int
    """Units (clusters) in the arm."""
    mean: float
    """Point estimate of the arm's metric."""
    variance_of_mean: float
    """Sampling variance of ``mean``."""
    df: float = _INF
    """Degrees of freedom of the variance (``n - 1`` for Welch; inf for normal)."""


@dataclass(frozen=True)
class Effect:
    """An effect with its fixed-horizon (and optionally anytime-valid) inference."""

    estimate: float
    std_error: float
    ci_lower: float
    """Lower bound (``-inf`` for a one-sided ``less`` test)."""
    ci_upper: float
    """Upper bound (``inf`` for a one-sided ``greater`` test)."""
    p_value: float
    df: float
    """Degrees of freedom of the reference t distribution (inf: normal)."""
    sequential_ci_lower: float | None = None
    sequential_ci_upper: float | None = None
    sequential_p_value: float | None = None
    """Anytime-valid p-value; ``None`` unless the plan is sequential."""


@dataclass(frozen=True)
class TestResult:
    """Outcome of a two-arm comparison; effects are ``None`` when ``reason`` says why."""

    absolute: Effect | None
    relative: Effect | None
    reason: Reason | None = None
    """Why ``absolute`` (and so ``relative``) is missing."""
    relative_reason: Reason | None = None
    """Why only ``relative`` is missing."""


def effect_interval(
    estimate: float,
    std_error: float,
    df: float,
    alpha: float,
    sides: Sides,
) -> tuple[float, float]:
    """Fixed-horizon interval at level ``1 - alpha`` for ``sides``."""
    if sides is Sides.TWO_SIDED:
        half = critical_value(1.0 - alpha / 2.0, df) * std_error
        return estimate - half, estimate + half
    half = critical_value(1.0 - alpha, df) * std_error
    if sides is Sides.GREATER:
        return estimate - half, _INF
    return -_INF, estimate + half


def _sequential_interval(
    estimate: float, std_error: float, n: float, alpha: float, rho: float, sides: Sides
) -> tuple[float, float]:
    half = confidence_sequence_halfwidth(std_error, n, alpha, rho)
    lower = -_INF if sides is Sides.LESS else estimate - half
    upper = _INF if sides is Sides.GREATER else estimate + half
    return lower, upper


def _one_sided_anytime(p: float, estimate: float, sides: Sides) -> float:
    """A one-sided test can only reject in its direction."""
    if sides is Sides.GREATER and estimate <= 0.0:
        return 1.0
    if sides is Sides.LESS and estimate >= 0.0:
        return 1.0
    return p


def _effect(
    estimate: float,
    variance: float,
    df: float,
    n_total: int,
    alpha: float,
    sides: Sides,
    sequential: SequentialDesign | None,
) -> Effect:
    se = math.sqrt(variance)
    lower, upper = effect_interval(estimate, se, df, alpha, sides)
    effect = Effect(estimate, se, lower, upper, tail_p_value(estimate / se, df, sides.value), df)
    if sequential is None:
        return effect
    rho = mixture_rho(alpha, sequential.tuning_sample_size)
    s_lower, s_upper = _sequential_interval(estimate, se, n_total, alpha, rho, sides)
    p_seq = _one_sided_anytime(anytime_p_value(estimate, se, n_total, rho), estimate, sides)
    return replace(
        effect, sequential_ci_lower=s_lower, sequential_ci_upper=s_upper, sequential_p_value=p_seq
    )


def adjusted_interval(
    effect: Effect,
    alpha: float,
    sides: Sides,
    n_total: int,
    sequential: SequentialDesign | None,
    plan_alpha: float,
) -> tuple[float, float]:
    """Interval at ``alpha`` (e.g. a multiplicity-adjusted level) from the same inference.

    For a sequential effect, ``rho`` stays tuned at ``plan_alpha`` so that the interval
    and the anytime-valid p-value remain each other's inversion.
    """
    if sequential is None:
        return effect_interval(effect.estimate, effect.std_error, effect.df, alpha, sides)
    rho = mixture_rho(plan_alpha, sequential.tuning_sample_size)
    return _sequential_interval(effect.estimate, effect.std_error, n_total, alpha, rho, sides)


def compare(
    control: ArmEstimate,
    treatment: ArmEstimate,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """Absolute and relative effect of ``treatment`` over ``control``."""
    if control.n <= 0 or treatment.n <= 0:
        return TestResult(None, None, Reason.EMPTY_ARM)
    if control.df < 1 or treatment.df < 1:
        return TestResult(None, None, Reason.INSUFFICIENT_DATA)
    v_c, v_t = control.variance_of_mean, treatment.variance_of_mean
    variance = v_c + v_t
    if not variance > 0.0:
        return TestResult(None, None, Reason.ZERO_VARIANCE)
    if math.isinf(control.df) or math.isinf(treatment.df):
        df = _INF
    else:
        df = variance**2 / (v_c**2 / control.df + v_t**2 / treatment.df)
    n_total = control.n + treatment.n
    m_c, m_t = control.mean, treatment.mean
    absolute = _effect(m_t - m_c, variance, df, n_total, alpha, sides, sequential)
    if m_c == 0.0:
        return TestResult(absolute, None, relative_reason=Reason.CONTROL_MEAN_ZERO)
    rel_variance = v_t / m_c**2 + m_t**2 * v_c / m_c**4
    if not rel_variance > 0.0:  # e.g. a constant zero treatment against a varying control
        return TestResult(absolute, None, relative_reason=Reason.ZERO_VARIANCE)
    relative = _effect(m_t / m_c - 1.0, rel_variance, df, n_total, alpha, sides, sequential)
    return TestResult(absolute, relative)
