"""Capping (winsorisation) of per-unit values before they are aggregated.

Capping bounds each unit's value at an absolute threshold or at a percentile of the
pooled (all-arm) distribution, trading a small bias for a large variance reduction
on heavy-tailed metrics such as cost or tokens (Kohavi, Tang & Xu 2020, "Trustworthy
online controlled experiments", ch. 22). Use the same threshold for every arm; the SQL
layer applies ``LEAST(GREATEST(y, lower), upper)`` before the sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Capping", "CappingKind", "cap_values", "capping_thresholds"]


class CappingKind(StrEnum):
    ABSOLUTE = "absolute"
    PERCENTILE = "percentile"


@dataclass(frozen=True)
class Capping:
    """Upper (and optionally lower) cap; for ``PERCENTILE`` the bounds are quantile levels."""

    kind: CappingKind = CappingKind.PERCENTILE
    upper: float | None = 0.99
    lower: float | None = None


def capping_thresholds(values: ArrayLike, capping: Capping) -> tuple[float | None, float | None]:
    """Absolute ``(lower, upper)`` thresholds for ``values`` (pooled over arms)."""
    if capping.kind is CappingKind.ABSOLUTE:
        return capping.lower, capping.upper
    y = np.asarray(values, dtype=np.float64).ravel()
    if y.size == 0:
        return None, None
    lower = None if capping.lower is None else float(np.quantile(y, capping.lower))
    upper = None if capping.upper is None else float(np.quantile(y, capping.upper))
    return lower, upper


def cap_values(values: ArrayLike, capping: Capping) -> np.ndarray:
    """``values`` winsorised at the thresholds of ``capping``."""
    y = np.asarray(values, dtype=np.float64)
    lower, upper = capping_thresholds(y, capping)
    if lower is None and upper is None:
        return y.copy()
    return np.clip(y, lower, upper)
