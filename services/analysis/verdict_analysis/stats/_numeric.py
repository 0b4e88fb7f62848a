"""Small numeric helpers shared by the method modules (scalar, fast, warning-free)."""

from __future__ import annotations

import math

from scipy import special

__all__ = [
    "critical_value",
    "normal_cdf",
    "normal_pdf",
    "normal_quantile",
    "sample_variance",
    "tail_p_value",
    "upper_critical_value",
]

_RELATIVE_ZERO = 1e-12


def sample_variance(n: float, total: float, total_sq: float) -> float:
    """Unbiased variance from ``n``, ``sum`` and ``sum of squares``.

    Values below ``1e-12`` times the raw second moment are floating-point residue of
    ``sum_sq - sum**2 / n`` and are returned as exactly zero.
    """
    if n < 2:
        return 0.0
    raw = (total_sq - total * total / n) / (n - 1)
    scale = abs(total_sq) / n
    if raw <= _RELATIVE_ZERO * scale or raw <= 0.0:
        return 0.0
    return raw


def normal_cdf(x: float) -> float:
    return float(special.ndtr(x))


def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def normal_quantile(p: float) -> float:
    return float(special.ndtri(p))


def critical_value(level: float, df: float) -> float:
    """Quantile ``level`` of Student's t with ``df`` degrees of freedom (normal if inf)."""
    if math.isinf(df):
        return float(special.ndtri(level))
    return float(special.stdtrit(df, level))


def upper_critical_value(tail: float, df: float) -> float:
    """The value exceeded with probability ``tail``: ``critical_value(1 - tail, df)``, but
    computed from the small tail so that a tiny (e.g. multiplicity-adjusted) tail stays
    accurate instead of rounding ``1 - tail`` to 1."""
    if math.isinf(df):
        return -float(special.ndtri(tail))
    return -float(special.stdtrit(df, tail))


def _cdf(x: float, df: float) -> float:
    if math.isinf(df):
        return float(special.ndtr(x))
    return float(special.stdtr(df, x))


def tail_p_value(statistic: float, df: float, sides: str) -> float:
    """P-value of a t (or z when ``df`` is inf) statistic for ``sides``."""
    if sides == "greater":
        return _cdf(-statistic, df)
    if sides == "less":
        return _cdf(statistic, df)
    return min(1.0, 2.0 * _cdf(-abs(statistic), df))
