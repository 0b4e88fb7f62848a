"""Anytime-valid inference: the normal-mixture confidence sequence.

Asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas
(2023, "Time-uniform central limit theory and asymptotic confidence sequences",
Thm 2.2), built on the normal-mixture boundary of Howard, Ramdas, McAuliffe &
Sekhon (2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
eq. 14). For an estimate with standard error ``se`` after ``n`` units (both arms),
with ``s^2 = n * se^2``::

    halfwidth = s * sqrt( 2 (n rho^2 + 1) / (n^2 rho^2) * log( sqrt(n rho^2 + 1) / alpha ) )
    rho^2     = ( -2 log alpha + log(-2 log alpha + 1) ) / N*

``rho`` makes the sequence tightest at ``n = N*`` (GrowthBook's tuning). The interval
is valid simultaneously over all looks, so it can be monitored continuously. The
anytime-valid p-value inverts it with ``rho`` fixed: the smallest alpha whose
sequence excludes zero, ``p = min(1, sqrt(n rho^2 + 1) * exp(-z^2 n rho^2 / (2 (n rho^2 + 1))))``
with ``z = estimate / se``; rejecting when ``p <= alpha`` is the same decision as the
interval excluding zero, and ``P(exists n: p_n <= alpha) <= alpha`` (Ville's inequality).
The sequence is two-sided; for one-sided plans its single bound is conservative.
"""

from __future__ import annotations

import math

__all__ = ["anytime_p_value", "confidence_sequence_halfwidth", "mixture_rho"]


def mixture_rho(alpha: float, tuning_sample_size: float) -> float:
    """Mixture scale ``rho`` that minimises the width at ``tuning_sample_size`` units."""
    log_a = -2.0 * math.log(alpha)
    return math.sqrt((log_a + math.log(log_a + 1.0)) / tuning_sample_size)


def confidence_sequence_halfwidth(std_error: float, n: float, alpha: float, rho: float) -> float:
    """Half-width of the level ``1 - alpha`` confidence sequence after ``n`` units."""
    nr2 = n * rho * rho
    return std_error * math.sqrt(2.0 * (nr2 + 1.0) / nr2 * math.log(math.sqrt(nr2 + 1.0) / alpha))


def anytime_p_value(estimate: float, std_error: float, n: float, rho: float) -> float:
    """Anytime-valid p-value for ``estimate == 0`` (inverse of the mixture martingale)."""
    nr2 = n * rho * rho
    z = estimate / std_error
    log_p = 0.5 * math.log(nr2 + 1.0) - z * z * nr2 / (2.0 * (nr2 + 1.0))
    return min(1.0, math.exp(log_p))
