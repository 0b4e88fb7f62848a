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

Every :class:`Effect` is built from one :class:`~.inference.Inference` by
:func:`build_effect`: its fixed-horizon interval and p-value are the same test read two
ways, and so are its anytime-valid interval and p-value (see :mod:`.interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .inference import Inference, WaldInference, sequential_method
from .interval import Interval, agreeing_p_value
from .methods import Method
from .plan import SequentialDesign, Sides
from .reasons import Reason
from .sequential import Mixture, mixture_rho

__all__ = [
    "ArmEstimate",
    "Effect",
    "TestResult",
    "build_effect",
    "compare",
    "mixture_for",
]

_INF = math.inf


@dataclass(frozen=True)
class ArmEstimate:
    """One arm reduced to a point estimate and the variance of that estimate."""

    n_units: int
    """Units (clusters) in the arm."""
    mean: float
    """Point estimate of the arm's metric."""
    variance_of_mean: float
    """Sampling variance of ``mean``."""
    df: float = _INF
    """Degrees of freedom of the variance (``n - 1`` for Welch; inf for normal)."""


@dataclass(frozen=True, kw_only=True)
class Effect:
    """An effect with its fixed-horizon and (in a sequential plan) anytime-valid pairs.

    Within each pair the interval excludes 0 exactly when the p-value is at most
    ``alpha`` (:meth:`Interval.excludes <.interval.Interval.excludes>`).
    """

    estimate: float
    std_error: float
    """Standard error of ``estimate`` (for ``z_pooled`` the unpooled one: the score
    test's variance is restricted to each null value instead)."""
    df: float
    """Degrees of freedom of the reference t distribution (inf: normal)."""
    alpha: float
    """Level of the intervals: each is a ``1 - alpha`` interval for ``sides``."""
    sides: Sides
    method: Method
    """The test behind ``ci_lower``, ``ci_upper`` and ``p_value``."""
    ci_lower: float
    """Fixed-horizon lower bound (``-inf`` for a one-sided ``less`` test)."""
    ci_upper: float
    """Fixed-horizon upper bound (``inf`` for a one-sided ``greater`` test)."""
    p_value: float
    """Fixed-horizon p-value of ``method``, against ``sides``."""
    sequential_ci_lower: float | None = None
    sequential_ci_upper: float | None = None
    sequential_p_value: float | None = None
    """Anytime-valid p-value of the same confidence sequence as the sequential interval."""
    sequential_method: Method | None = None
    """The confidence sequence's boundary (two- or one-sided normal mixture)."""
    sequential_reason: Reason | None = Reason.NOT_SEQUENTIAL
    """Why the sequential figures are ``None`` (``None`` when they are set)."""
    inference: Inference = field(compare=False, repr=False)
    """The test itself, for intervals at other levels (:meth:`interval_at`)."""

    @property
    def interval(self) -> Interval:
        """The fixed-horizon interval."""
        return Interval(self.ci_lower, self.ci_upper)

    @property
    def sequential_interval(self) -> Interval | None:
        """The anytime-valid interval, when the plan is sequential."""
        if self.sequential_ci_lower is None or self.sequential_ci_upper is None:
            return None
        return Interval(self.sequential_ci_lower, self.sequential_ci_upper)

    def interval_at(self, alpha: float, *, sequential: bool = False) -> Interval:
        """The same test's interval at another level (e.g. a multiplicity-adjusted one)."""
        return self.inference.interval(alpha, sequential)


@dataclass(frozen=True)
class TestResult:
    """Outcome of a two-arm comparison; effects are ``None`` when ``reason`` says why."""

    absolute: Effect | None
    relative: Effect | None
    reason: Reason | None = None
    """Why ``absolute`` (and so ``relative``) is missing."""
    relative_reason: Reason | None = None
    """Why ``relative`` is missing (equal to ``reason`` when both are)."""


def mixture_for(
    design: SequentialDesign | None, alpha: float, sides: Sides, n_total: float
) -> Mixture | None:
    """The confidence sequence of a comparison of ``n_total`` units, tuned at ``alpha``."""
    if design is None:
        return None
    one_sided = sides is not Sides.TWO_SIDED
    rho = mixture_rho(alpha, design.tuning_sample_size, one_sided=one_sided)
    return Mixture(rho, n_total, one_sided)


def build_effect(inference: Inference, alpha: float) -> Effect:
    """Both pairs of ``inference`` at ``alpha``, each interval agreeing with its p-value."""
    fixed = inference.interval(alpha, False)
    lower: float | None = None
    upper: float | None = None
    p_value: float | None = None
    method: Method | None = None
    reason: Reason | None = Reason.NOT_SEQUENTIAL
    if inference.mixture is not None:
        anytime = inference.interval(alpha, True)
        lower, upper = anytime.lower, anytime.upper
        p_value = agreeing_p_value(inference.p_value(True), anytime, alpha)
        method, reason = sequential_method(inference.mixture), None
    return Effect(
        estimate=inference.estimate,
        std_error=inference.std_error,
        df=inference.df,
        alpha=alpha,
        sides=inference.sides,
        method=inference.method,
        ci_lower=fixed.lower,
        ci_upper=fixed.upper,
        p_value=agreeing_p_value(inference.p_value(False), fixed, alpha),
        sequential_ci_lower=lower,
        sequential_ci_upper=upper,
        sequential_p_value=p_value,
        sequential_method=method,
        sequential_reason=reason,
        inference=inference,
    )


def compare(
    control: ArmEstimate,
    treatment: ArmEstimate,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
    method: Method = Method.WELCH_T,
) -> TestResult:
    """Absolute (by ``method``) and relative (delta method) effect of ``treatment``."""
    if control.n_units <= 0 or treatment.n_units <= 0:
        return TestResult(None, None, Reason.EMPTY_ARM, Reason.EMPTY_ARM)
    if control.df < 1 or treatment.df < 1:
        return TestResult(None, None, Reason.INSUFFICIENT_DATA, Reason.INSUFFICIENT_DATA)
    v_c, v_t = control.variance_of_mean, treatment.variance_of_mean
    variance = v_c + v_t
    m_c, m_t = control.mean, treatment.mean
    if not all(math.isfinite(x) for x in (variance, m_c, m_t, m_t - m_c)):
        return TestResult(None, None, Reason.OUT_OF_RANGE, Reason.OUT_OF_RANGE)
    if not variance > 0.0:
        return TestResult(None, None, Reason.ZERO_VARIANCE, Reason.ZERO_VARIANCE)
    if math.isinf(control.df) or math.isinf(treatment.df):
        df = _INF
    else:
        share_c, share_t = v_c / variance, v_t / variance  # shares: no under- or overflow
        df = 1.0 / (share_c * share_c / control.df + share_t * share_t / treatment.df)
    mixture = mixture_for(sequential, alpha, sides, control.n_units + treatment.n_units)
    absolute = build_effect(
        WaldInference(method, m_t - m_c, math.sqrt(variance), df, sides, mixture), alpha
    )
    if m_c == 0.0:
        return TestResult(absolute, None, relative_reason=Reason.CONTROL_MEAN_ZERO)
    # Ratios first: m_c * m_c can underflow to 0 (division error) or overflow (** raises).
    ratio = m_t / m_c
    rel_variance = v_t / m_c / m_c + ratio * ratio * (v_c / m_c / m_c)
    if not (math.isfinite(rel_variance) and math.isfinite(ratio)):
        return TestResult(absolute, None, relative_reason=Reason.OUT_OF_RANGE)
    if not rel_variance > 0.0:  # e.g. a constant zero treatment against a varying control
        return TestResult(absolute, None, relative_reason=Reason.ZERO_VARIANCE)
    relative = WaldInference(
        Method.DELTA_METHOD, ratio - 1.0, math.sqrt(rel_variance), df, sides, mixture
    )
    return TestResult(absolute, build_effect(relative, alpha))
