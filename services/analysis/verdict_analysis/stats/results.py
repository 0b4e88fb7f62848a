"""Typed inputs and results of :func:`analyze_experiment`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .effects import Effect
from .plan import AnalysisPlan, Direction, MetricType
from .quantile import QuantileStats
from .reasons import Reason
from .srm import SrmResult
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats

__all__ = [
    "Comparison",
    "ExperimentAnalysis",
    "MetricAnalysis",
    "MetricInput",
    "MetricStats",
    "VariantSummary",
]

MetricStats = (
    SampleStats | ProportionStats | RatioStats | CupedStats | RatioCupedStats | QuantileStats
)
"""Per-variant statistics accepted by :class:`MetricInput`."""


@dataclass(frozen=True)
class MetricInput:
    """One metric: its statistics per variant, the control among them, its direction.

    Accepted statistics per ``metric_type``: ``MEAN`` takes ``SampleStats`` or
    ``CupedStats``; ``PROPORTION`` takes ``ProportionStats``; ``RATIO`` takes
    ``RatioStats`` or ``RatioCupedStats``; ``QUANTILE`` takes ``QuantileStats``. All
    variants of one metric use the same class.
    """

    key: str
    metric_type: MetricType
    control: str
    """Name of the control variant; must be a key of ``variants``."""
    variants: Mapping[str, MetricStats]
    """Statistics per variant name, control included (iteration order is kept)."""
    direction: Direction = Direction.INCREASE


@dataclass(frozen=True)
class VariantSummary:
    """One arm of one metric."""

    variant: str
    units: int
    estimate: float | None
    """Mean, rate, ratio or quantile (CUPED-adjusted when CUPED statistics are given)."""
    std_error: float | None
    ci_lower: float | None
    """Two-sided ``1 - alpha`` interval (the outer interval for quantiles)."""
    ci_upper: float | None
    reason: Reason | None = None


@dataclass(frozen=True)
class Comparison:
    """A treatment variant against the control on one metric."""

    variant: str
    absolute: Effect | None
    """``treatment - control`` with its intervals and p-values."""
    relative: Effect | None
    """``treatment / control - 1``."""
    p_value: float | None
    """Headline p-value: the plan's effect scale, anytime-valid when the plan is sequential."""
    adjusted_p_value: float | None
    """``p_value`` after the plan's multiple-testing correction."""
    adjusted_ci_lower: float | None
    """Interval on the plan's effect scale matching ``adjusted_p_value``."""
    adjusted_ci_upper: float | None
    significant: bool
    """``adjusted_p_value <= alpha``."""
    chance_to_beat_control: float | None
    expected_loss: float | None
    """Expected loss of shipping the treatment, on the plan's effect scale."""
    expected_loss_control: float | None
    effect_size: float | None
    """Cohen's d (means) or h (proportions); ``None`` for other metric types."""
    reason: Reason | None = None
    relative_reason: Reason | None = None


@dataclass(frozen=True)
class MetricAnalysis:
    key: str
    metric_type: MetricType
    direction: Direction
    control: str
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    cuped_theta: float | None = None
    """Pooled CUPED slope when CUPED statistics were given."""
    reason: Reason | None = None
    """Set when the whole metric could not be analysed (no comparisons then)."""


@dataclass(frozen=True)
class ExperimentAnalysis:
    metrics: tuple[MetricAnalysis, ...]
    srm: SrmResult | None
    """``None`` when no assignment counts were given."""
    plan: AnalysisPlan
    n_tests: int
    """Number of comparisons in the multiple-testing family."""
