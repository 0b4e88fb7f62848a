"""Quantile metrics (e.g. p95 latency) clustered by unit: the outer confidence interval.

Deng, Knoblich & Lu (2018, KDD, section 4) for the clustered variance of the rank, and
Yao, Li & Lu (2024) for rounding the ranks outwards (the "outer" interval). With ``N``
events from ``K`` units, the estimate is the order statistic ``q = X_(ceil(N p))``.
The share of events at or below ``q``, ``F = sum S_u / sum C_u`` (``C_u`` events of
unit ``u``, ``S_u`` of them ``<= q``), is a ratio of per-unit sums, so its clustered
delta-method variance is

    Var(F) = ( s_S^2 - 2 F s_SC + F^2 s_C^2 ) / ( K * mean(C)^2 ).

Ranks ``N (p -/+ z sd(F))`` are rounded outwards, ``L = floor(N(p - z sd))`` and
``U = ceil(N(p + z sd)) + 1`` (clipped to ``[1, N]``): the "outer" interval
``[X_(L), X_(U)]``, which keeps its coverage with ties and discrete latencies.
For a difference, each arm's standard error is recovered from its interval,
``se = (X_(U) - X_(L)) / (2 z)``, and the effects follow by the delta method.

What the SQL layer provides per arm (two passes over the events):

1. ``n_units``, ``n_events`` and ``value = X_(ceil(n_events * quantile))``;
2. with ``S_u = COUNT(x <= value)`` and ``C_u = COUNT(*)`` per unit:
   ``sum_events_sq = SUM(C_u^2)``, ``sum_below = SUM(S_u)``, ``sum_below_sq = SUM(S_u^2)``,
   ``sum_events_below = SUM(C_u * S_u)``;
3. the values at the ranks :func:`outer_ci_ranks` returns, as ``lower_value`` and
   ``upper_value``, with ``ci_alpha`` the alpha used for the ranks.

Quantiles do not add, so ``QuantileStats`` has no ``+``: shards are merged in SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from ._numeric import normal_quantile
from .effects import ArmEstimate, TestResult, compare
from .methods import Method
from .plan import SequentialDesign, Sides
from .reasons import Reason

__all__ = [
    "QuantileStats",
    "outer_ci_ranks",
    "quantile_arm",
    "quantile_stats_from_events",
    "quantile_test",
]


@dataclass(frozen=True)
class QuantileStats:
    """Per-arm aggregates for a clustered quantile (see the module docstring)."""

    quantile: float
    """Quantile level ``p`` in (0, 1), e.g. 0.95."""
    n_units: int
    n_events: int
    value: float
    """The estimate ``X_(ceil(n_events * quantile))``."""
    sum_events_sq: float
    sum_below: float
    sum_below_sq: float
    sum_events_below: float
    lower_value: float | None = None
    """``X_(L)`` for the lower rank from :func:`outer_ci_ranks`."""
    upper_value: float | None = None
    """``X_(U)`` for the upper rank from :func:`outer_ci_ranks`."""
    ci_alpha: float = 0.05
    """Alpha at which the ranks of ``lower_value`` and ``upper_value`` were computed."""

    @property
    def below_share_sd(self) -> float:
        """Clustered standard deviation of the share of events at or below ``value``."""
        k, n = self.n_units, self.n_events
        if k < 2 or n <= 0:
            return 0.0
        f = self.sum_below / n
        var_s = (self.sum_below_sq - self.sum_below * (self.sum_below / k)) / (k - 1)
        var_c = (self.sum_events_sq - n * n / k) / (k - 1)
        cov = (self.sum_events_below - self.sum_below * n / k) / (k - 1)
        raw = var_s - 2.0 * f * cov + f * f * var_c
        if raw <= 1e-12 * (self.sum_below_sq + f * f * self.sum_events_sq) / k:
            return 0.0
        return math.sqrt(raw / k) / (n / k)


def outer_ci_ranks(stats: QuantileStats, alpha: float = 0.05) -> tuple[int, int]:
    """1-based ranks ``(L, U)`` whose values bound the outer ``1 - alpha`` interval."""
    n = stats.n_events
    half = normal_quantile(1.0 - alpha / 2.0) * stats.below_share_sd
    lower = math.floor(n * (stats.quantile - half))
    upper = math.ceil(n * (stats.quantile + half)) + 1
    return max(1, min(n, lower)), max(1, min(n, upper))


def quantile_arm(stats: QuantileStats) -> ArmEstimate | Reason:
    """Arm estimate with ``se = (X_(U) - X_(L)) / (2 z)``."""
    if stats.n_units <= 0 or stats.n_events <= 0:
        return Reason.EMPTY_ARM
    if stats.n_units < 2 or stats.lower_value is None or stats.upper_value is None:
        return Reason.INSUFFICIENT_DATA
    z = normal_quantile(1.0 - stats.ci_alpha / 2.0)
    se = (stats.upper_value - stats.lower_value) / (2.0 * z)
    se = max(se, 0.0)
    return ArmEstimate(stats.n_units, stats.value, se * se)


def quantile_test(
    control: QuantileStats,
    treatment: QuantileStats,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> TestResult:
    """Difference of two clustered quantiles."""
    arm_c, arm_t = quantile_arm(control), quantile_arm(treatment)
    if isinstance(arm_c, Reason):
        return TestResult(None, None, arm_c, arm_c)
    if isinstance(arm_t, Reason):
        return TestResult(None, None, arm_t, arm_t)
    return compare(
        arm_c, arm_t, alpha=alpha, sides=sides, sequential=sequential,
        method=Method.QUANTILE_OUTER_CI,
    )  # fmt: skip


def quantile_stats_from_events(
    values: ArrayLike, unit_ids: ArrayLike, quantile: float, alpha: float = 0.05
) -> QuantileStats:
    """Everything :class:`QuantileStats` needs, from raw events and their unit ids."""
    x = np.asarray(values, dtype=np.float64).ravel()
    units = np.asarray(unit_ids).ravel()
    n = int(x.size)
    if n == 0:
        return QuantileStats(quantile, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, ci_alpha=alpha)
    ordered = np.sort(x)
    value = float(ordered[max(1, math.ceil(n * quantile)) - 1])
    _, unit_index = np.unique(units, return_inverse=True)
    counts = np.bincount(unit_index).astype(np.float64)
    below = np.bincount(unit_index, weights=(x <= value).astype(np.float64))
    stats = QuantileStats(
        quantile=quantile,
        n_units=int(counts.size),
        n_events=n,
        value=value,
        sum_events_sq=float(counts @ counts),
        sum_below=float(below.sum()),
        sum_below_sq=float(below @ below),
        sum_events_below=float(counts @ below),
        ci_alpha=alpha,
    )
    lower, upper = outer_ci_ranks(stats, alpha)
    return replace(
        stats, lower_value=float(ordered[lower - 1]), upper_value=float(ordered[upper - 1])
    )
