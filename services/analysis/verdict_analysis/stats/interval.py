"""Intervals and the rule that ties each one to the p-value of the same test.

An interval here is the set of effect values the test does *not* reject at its level,
which is an open set: a bound equal to the null value means the test rejects it (its
p-value equals alpha). So, for every (interval, p-value) pair the engine reports,

    interval excludes the null  <=>  p <= alpha

with :meth:`Interval.excludes` as the one definition of "excludes". The two sides of
that equivalence are computed separately (a quantile and a tail probability, or a root
and a closed form); :func:`agreeing_p_value` removes the last-bit disagreement that
floating point can leave when the null sits on the bound, and nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ROUNDING", "Interval", "agreeing_p_value"]

ROUNDING = 1e-9
"""Relative distance from alpha within which a p-value is treated as rounding of it."""


@dataclass(frozen=True)
class Interval:
    """``(lower, upper)``; ``-inf``/``inf`` stand for the open side of a one-sided test."""

    lower: float
    upper: float

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the test of ``effect == value`` rejects: ``value`` is not strictly inside."""
        return self.lower >= value or self.upper <= value

    def within(self, low: float, high: float) -> bool:
        """Whether the finite bounds lie in ``[low, high]`` (infinite bounds are ignored)."""
        lower_ok = math.isinf(self.lower) or low <= self.lower
        upper_ok = math.isinf(self.upper) or self.upper <= high
        return lower_ok and upper_ok


def agreeing_p_value(p_value: float, interval: Interval, alpha: float, null: float = 0.0) -> float:
    """``p_value``, nudged across ``alpha`` only when it is rounding away from agreeing.

    When the interval and ``p <= alpha`` disagree and ``p`` lies within ``ROUNDING``
    (relative) of ``alpha``, the null sits on the bound: the p-value is set to ``alpha``
    (rejecting) or to the next float above it (not rejecting) as the interval says. A
    larger disagreement is left visible: it would be a bug, and the tests look for it.
    """
    rejects = p_value <= alpha
    if rejects == interval.excludes(null) or abs(p_value - alpha) > ROUNDING * alpha:
        return p_value
    return alpha if interval.excludes(null) else math.nextafter(alpha, math.inf)
