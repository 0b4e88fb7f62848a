"""The pooled two-proportion test as a score test, and the score interval that inverts it.

For the difference ``delta = p_t - p_c`` the score statistic (Farrington & Manning 1990,
"Test statistics and sample size formulae for comparative binomial trials with null
hypothesis of non-zero risk difference or non-unity relative risk", Stat. Med.) is

    z(delta) = (p^_t - p^_c - delta) / sqrt( p~_t (1 - p~_t)/n_t + p~_c (1 - p~_c)/n_c )

where ``p~`` are the maximum-likelihood rates restricted to ``p_t - p_c = delta`` (the
closed-form root of a cubic, Miettinen & Nurminen 1985, appendix; Farrington & Manning
1990, eq. 4). At ``delta = 0`` the restricted rates are the pooled rate ``p-bar``, so
``z(0)`` is the classic pooled z-test (Fleiss, Levin & Paik 2003, ch. 4; statsmodels'
``proportions_ztest``). The interval is ``{delta : -c < z(delta) < c}`` with the same
critical value ``c`` as the p-value (t/normal quantile, or the mixture boundary of a
sequential plan); ``z`` decreases in ``delta``, so each bound is one root, found by
Brent's method on ``[-1, estimate]`` or ``[estimate, 1]``. Without the ``N/(N-1)`` factor
of Miettinen & Nurminen this is statsmodels' ``confint_proportions_2indep(method="score",
correction=False)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize

from .inference import critical, p_value_of, require_mixture
from .interval import Interval
from .methods import Method
from .plan import Sides
from .sequential import Mixture
from .sufficient import ProportionStats

__all__ = ["ScoreInference", "restricted_rates", "score_z"]

_INF = math.inf


def restricted_rates(
    control: ProportionStats, treatment: ProportionStats, delta: float
) -> tuple[float, float]:
    """``(p~_t, p~_c)``: maximum likelihood under ``p_t - p_c = delta``."""
    if delta == 0.0:
        pooled = (control.successes + treatment.successes) / (control.n_units + treatment.n_units)
        return pooled, pooled
    p1, p2 = treatment.mean, control.mean
    theta = control.n_units / treatment.n_units
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a * a) + d / (2.0 * a)
    u_sq = b * b / (9.0 * a * a) - c / (3.0 * a)
    u = math.copysign(math.sqrt(max(u_sq, 0.0)), v)
    if u == 0.0:
        rate_t = -b / (3.0 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3.0
        rate_t = 2.0 * u * math.cos(w) - b / (3.0 * a)
    rate_t = max(0.0, min(1.0, rate_t))
    return rate_t, max(0.0, min(1.0, rate_t - delta))


def score_z(control: ProportionStats, treatment: ProportionStats, delta: float) -> float:
    """The score statistic ``z(delta)`` (``+-inf`` where the restricted variance vanishes)."""
    rate_t, rate_c = restricted_rates(control, treatment, delta)
    variance = (
        rate_t * (1.0 - rate_t) / treatment.n_units + rate_c * (1.0 - rate_c) / control.n_units
    )
    gap = treatment.mean - control.mean - delta
    if variance > 0.0:
        return gap / math.sqrt(variance)
    return 0.0 if gap == 0.0 else math.copysign(_INF, gap)


@dataclass(frozen=True)
class ScoreInference:
    """The pooled test of :mod:`.score`; ``std_error`` is the unpooled one of the estimate."""

    control: ProportionStats
    treatment: ProportionStats
    std_error: float
    sides: Sides
    mixture: Mixture | None
    method: Method = Method.Z_POOLED
    df: float = _INF

    @property
    def estimate(self) -> float:
        return self.treatment.mean - self.control.mean

    def _root(self, target: float, lower: float, upper: float) -> float:
        """The ``delta`` in ``[lower, upper]`` where ``z(delta) = target`` (z decreasing)."""

        def gap(delta: float) -> float:
            return score_z(self.control, self.treatment, delta) - target

        at_lower, at_upper = gap(lower), gap(upper)
        if at_lower <= 0.0:
            return lower
        if at_upper >= 0.0:
            return upper
        if math.isinf(at_lower) or math.isinf(at_upper):
            # Step inside the parameter space's edge, where the variance is positive.
            inner = (lower + 1e-12, upper) if math.isinf(at_lower) else (lower, upper - 1e-12)
            if gap(inner[0]) <= 0.0:
                return inner[0]
            if gap(inner[1]) >= 0.0:
                return inner[1]
            lower, upper = inner
        return float(optimize.brentq(gap, lower, upper, xtol=1e-15, rtol=1e-15))

    def interval(self, alpha: float, sequential: bool) -> Interval:
        mixture = require_mixture(self.mixture, sequential)
        c = critical(alpha, self.sides, self.df, mixture)
        estimate = self.estimate
        lower = -_INF if self.sides is Sides.LESS else self._root(c, -1.0, estimate)
        upper = _INF if self.sides is Sides.GREATER else self._root(-c, estimate, 1.0)
        return Interval(lower, upper)

    def p_value(self, sequential: bool) -> float:
        mixture = require_mixture(self.mixture, sequential)
        z = score_z(self.control, self.treatment, 0.0)
        return p_value_of(z, self.sides, self.df, mixture)
