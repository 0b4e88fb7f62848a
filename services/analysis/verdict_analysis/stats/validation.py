"""Which sufficient statistics the engine can analyse at all (else ``INVALID_INPUT``).

Counts must be non-negative integers, successes at most the units, every sum finite,
a quantile level inside (0, 1). Consistency between sums (e.g. ``sum_sq >= sum^2/n``)
is not required: rounding in SQL can break it slightly, and the variance formulas
clamp what it leaves at zero.
"""

from __future__ import annotations

import math
from dataclasses import fields

from .quantile import QuantileStats
from .sufficient import ProportionStats

__all__ = ["is_valid"]

_COUNTS = ("n_units", "n_events", "successes")


def is_valid(stats: object) -> bool:
    """Whether every field of ``stats`` is in range (see the module docstring)."""
    for f in fields(stats):  # type: ignore[arg-type]
        value = getattr(stats, f.name)
        if f.name in _COUNTS:
            if not isinstance(value, int) or value < 0:
                return False
        elif isinstance(value, float | int) and not math.isfinite(value):
            return False
    if isinstance(stats, ProportionStats) and stats.successes > stats.n_units:
        return False
    return not isinstance(stats, QuantileStats) or 0.0 < stats.quantile < 1.0
