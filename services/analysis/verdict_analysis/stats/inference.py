"""A test as an object: the interval at any level and the p-value of the same statistic.

Every figure pair the engine reports comes from one :class:`Inference`: the interval
at level ``alpha`` is the set of null values ``delta`` whose standardised statistic
``z(delta)`` the test does not reject, and the p-value is the test of ``delta = 0`` with
the same ``z``. Critical values are Student's t / normal quantiles (fixed horizon) or the
mixture boundary (:mod:`.sequential`), so the equivalence "interval excludes 0 <=> p <=
alpha" holds for the fixed pair, the anytime-valid pair and any adjusted level alike.

* :class:`WaldInference`: ``z(delta) = (estimate - delta) / se``; the interval is
  ``estimate -/+ c se``.
* the pooled score test (:mod:`.score`) has a ``z(delta)`` whose variance depends on
  ``delta``; its interval bounds are roots of ``z(delta) = +-c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ._numeric import tail_p_value, upper_critical_value
from .interval import Interval
from .methods import Method
from .plan import Sides
from .sequential import Mixture

__all__ = ["Inference", "WaldInference", "critical", "p_value_of", "sequential_method"]

_INF = math.inf


class Inference(Protocol):
    """What an :class:`~verdict_analysis.stats.effects.Effect` is computed from."""

    @property
    def method(self) -> Method: ...
    @property
    def estimate(self) -> float: ...
    @property
    def std_error(self) -> float: ...
    @property
    def df(self) -> float: ...
    @property
    def sides(self) -> Sides: ...
    @property
    def mixture(self) -> Mixture | None: ...

    def interval(self, alpha: float, sequential: bool) -> Interval:
        """Values not rejected at ``alpha`` (fixed horizon, or anytime-valid)."""
        ...

    def p_value(self, sequential: bool) -> float:
        """P-value of ``effect == 0`` from the same statistic."""
        ...


def critical(alpha: float, sides: Sides, df: float, mixture: Mixture | None) -> float:
    """Critical value of the standardised statistic (``mixture`` given: anytime-valid)."""
    if mixture is not None:
        return mixture.boundary(alpha)
    return upper_critical_value(alpha / 2.0 if sides is Sides.TWO_SIDED else alpha, df)


def p_value_of(z: float, sides: Sides, df: float, mixture: Mixture | None) -> float:
    """P-value of the standardised statistic ``z`` (``mixture`` given: anytime-valid)."""
    if mixture is not None:
        return mixture.p_value(z, sides)
    return tail_p_value(z, df, sides.value)


def sequential_method(mixture: Mixture) -> Method:
    return Method.MIXTURE_ONE_SIDED if mixture.one_sided else Method.MIXTURE_TWO_SIDED


def require_mixture(mixture: Mixture | None, sequential: bool) -> Mixture | None:
    if not sequential:
        return None
    if mixture is None:
        raise ValueError("anytime-valid figures need a sequential plan")
    return mixture


@dataclass(frozen=True)
class WaldInference:
    """``estimate`` with standard error ``std_error`` against t(``df``) or the normal."""

    method: Method
    estimate: float
    std_error: float
    df: float
    sides: Sides
    mixture: Mixture | None

    def interval(self, alpha: float, sequential: bool) -> Interval:
        mixture = require_mixture(self.mixture, sequential)
        half = critical(alpha, self.sides, self.df, mixture) * self.std_error
        lower = -_INF if self.sides is Sides.LESS else self.estimate - half
        upper = _INF if self.sides is Sides.GREATER else self.estimate + half
        return Interval(lower, upper)

    def p_value(self, sequential: bool) -> float:
        mixture = require_mixture(self.mixture, sequential)
        return p_value_of(self.estimate / self.std_error, self.sides, self.df, mixture)
