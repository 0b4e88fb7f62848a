"""Anytime-valid inference: normal-mixture confidence sequences, two- and one-sided.

Asymptotic confidence sequences of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas
(2023, "Time-uniform central limit theory and asymptotic confidence sequences",
Thm 2.2) on the mixture boundaries of Howard, Ramdas, McAuliffe & Sekhon (2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", section 3.2).
Everything is written for the standardised statistic ``z = estimate / se`` after ``n``
units (both arms), with ``a = n rho^2``:

* two-sided (Gaussian mixing density ``N(0, rho^2)`` on lambda)::

      M(z)  = (1 + a)^(-1/2) exp( z^2 a / (2 (1 + a)) )
      reject when M >= 1/alpha:  |z| >= sqrt( 2 (1 + a)/a * log( sqrt(1 + a) / alpha ) )

* one-sided (half-normal mixing density on lambda >= 0; derivation in docs/STATISTICS.md)::

      M+(z) = 2 (1 + a)^(-1/2) exp( z^2 a / (2 (1 + a)) ) Phi( z sqrt(a / (1 + a)) )
      reject "greater" when M+(z) >= 1/alpha, i.e. z >= z+(a, alpha) (by root finding)

Each ``M`` is a nonnegative supermartingale with ``M_0 = 1`` under the null, so by
Ville's inequality ``P(exists n: M_n >= 1/alpha) <= alpha``: the anytime-valid p-value
``min(1, 1/M)`` may be watched at every look, and the interval ``estimate -/+ boundary * se``
is its exact inversion (``p <= alpha`` exactly when the interval excludes 0).

``rho`` makes the sequence tightest at ``n = N*`` (GrowthBook's tuning):
``rho^2 = (-2 log a' + log(-2 log a' + 1)) / N*`` with ``a' = alpha`` (two-sided) or
``2 alpha`` (one-sided: ``M+ ~ 2 M`` for large ``z``, so the one-sided boundary at alpha
is close to the two-sided one at ``2 alpha``, whose tuning this is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, special

from .plan import Sides

__all__ = [
    "Mixture",
    "anytime_p_value",
    "confidence_sequence_halfwidth",
    "mixture_boundary",
    "mixture_rho",
]

_LOG2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


def mixture_rho(alpha: float, tuning_sample_size: float, *, one_sided: bool = False) -> float:
    """Mixture scale ``rho`` that minimises the width at ``tuning_sample_size`` units."""
    tuning_alpha = 2.0 * alpha if one_sided and 2.0 * alpha < 1.0 else alpha
    log_a = -2.0 * math.log(tuning_alpha)
    return math.sqrt((log_a + math.log(log_a + 1.0)) / tuning_sample_size)


def _log_two_sided(z: float, a: float) -> float:
    return -0.5 * math.log1p(a) + z * z * a / (2.0 * (1.0 + a))


def _log_one_sided(z: float, a: float) -> float:
    x = z * math.sqrt(a / (1.0 + a))
    if x < 0.0:
        # exp(x^2/2) Phi(x) = erfcx(-x/sqrt 2) / 2: the two huge terms of the other form
        # would cancel catastrophically for a large negative x.
        scaled = float(special.erfcx(-x / _SQRT2))
        if scaled <= 0.0:  # x = -inf (e.g. a z from a denormal variance): no evidence at all
            return -math.inf
        return -0.5 * math.log1p(a) + math.log(scaled)
    return _LOG2 + _log_two_sided(z, a) + float(special.log_ndtr(x))


def _two_sided_boundary(alpha: float, a: float) -> float:
    # log(sqrt(1 + a) / alpha) as a difference of logs: the quotient overflows for tiny alpha.
    return math.sqrt(2.0 * (1.0 + a) / a * (0.5 * math.log1p(a) - math.log(alpha)))


def mixture_boundary(alpha: float, n: float, rho: float, *, one_sided: bool = False) -> float:
    """``z`` at which the level-``alpha`` sequence after ``n`` units starts rejecting.

    One-sided: the root of ``log M+(z) = -log alpha``, bracketed by ``[0, two-sided
    boundary at alpha]`` (``M+ >= M`` for ``z >= 0``, and ``M+(0) = (1+a)^(-1/2) < 1/alpha``).
    """
    a = n * rho * rho
    two = _two_sided_boundary(alpha, a)
    if not one_sided:
        return two
    target = -math.log(alpha)
    return float(optimize.brentq(lambda z: _log_one_sided(z, a) - target, 0.0, two, xtol=1e-13))


def confidence_sequence_halfwidth(
    std_error: float, n: float, alpha: float, rho: float, *, one_sided: bool = False
) -> float:
    """Half-width of the level ``1 - alpha`` confidence sequence after ``n`` units."""
    return std_error * mixture_boundary(alpha, n, rho, one_sided=one_sided)


def _p_from_log_m(log_m: float) -> float:
    return 1.0 if log_m <= 0.0 else math.exp(-log_m)


def anytime_p_value(
    estimate: float, std_error: float, n: float, rho: float, sides: Sides = Sides.TWO_SIDED
) -> float:
    """Anytime-valid p-value for ``effect == 0`` against ``sides`` (``1 / M``, capped at 1)."""
    return Mixture(rho, n, sides is not Sides.TWO_SIDED).p_value(estimate / std_error, sides)


@dataclass(frozen=True)
class Mixture:
    """The confidence sequence of one comparison: its ``rho``, its ``n`` and its sidedness."""

    rho: float
    n: float
    """Units in the two compared arms."""
    one_sided: bool

    def boundary(self, alpha: float) -> float:
        """Critical ``|z|`` (two-sided) or ``z`` in the tested direction (one-sided)."""
        return mixture_boundary(alpha, self.n, self.rho, one_sided=self.one_sided)

    def p_value(self, z: float, sides: Sides) -> float:
        """``min(1, 1/M)`` of the standardised statistic ``z`` against ``sides``."""
        a = self.n * self.rho * self.rho
        if sides is Sides.TWO_SIDED:
            return _p_from_log_m(_log_two_sided(z, a))
        signed = z if sides is Sides.GREATER else -z
        if self.one_sided:
            return _p_from_log_m(_log_one_sided(signed, a))
        # A two-sided sequence read one-sidedly: it can only reject in the tested direction.
        return _p_from_log_m(_log_two_sided(z, a)) if signed > 0.0 else 1.0
