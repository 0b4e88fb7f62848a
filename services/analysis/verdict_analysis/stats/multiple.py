"""Multiple testing over metrics x variants: Holm and Benjamini-Hochberg.

* Holm (1979) "A simple sequentially rejective multiple test procedure": step-down,
  ``p_adj(i) = max_{j<=i} min(1, (m - j + 1) p_(j))``; controls the family-wise error.
* Benjamini & Hochberg (1995) "Controlling the false discovery rate": step-up,
  ``p_adj(i) = min_{j>=i} min(1, m p_(j) / j)``.

Matching intervals: the interval of a comparison is recomputed at
``alpha' = alpha * p / p_adj`` so that it excludes zero exactly when ``p_adj <= alpha``
(GrowthBook's construction; for Holm it is at least as wide as the Bonferroni-free
raw interval and at most as wide as ``alpha / m``'s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .plan import Correction

__all__ = ["adjust_p_values", "adjusted_alpha", "benjamini_hochberg", "holm"]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in np.maximum(adjusted, p)]  # never below p, even by rounding


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values, in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return [float(v) for v in np.maximum(adjusted, p)]  # never below p, even by rounding


def adjust_p_values(p_values: Sequence[float], correction: Correction) -> list[float]:
    """Adjusted p-values for ``correction`` (unchanged for ``NONE``)."""
    if correction is Correction.HOLM:
        return holm(p_values)
    if correction is Correction.BENJAMINI_HOCHBERG:
        return benjamini_hochberg(p_values)
    return [float(v) for v in p_values]


def adjusted_alpha(alpha: float, p_value: float, adjusted_p_value: float, m: int) -> float:
    """Level at which the raw interval matches the adjusted decision."""
    if adjusted_p_value <= 0.0:
        return alpha / max(m, 1)
    return alpha * min(1.0, p_value / adjusted_p_value)
