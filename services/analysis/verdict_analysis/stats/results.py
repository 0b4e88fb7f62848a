"""Typed inputs and results of :func:`analyze_experiment`.

Every figure that can be ``None`` has a reason field beside it, and every interval names
the test it comes from and carries that test's p-value (see docs/STATISTICS.md,
"Reading a result").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .effects import Effect
from .interval import Interval
from .methods import Method
from .plan import AnalysisPlan, Direction, EffectScale, MetricType
from .quantile import QuantileStats
from .reasons import Reason
from .srm import SrmResult
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats
from .verdict import Verdict

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
    non_inferiority_margin: float | None = None
    """For a guardrail: the harm tolerated, on the plan's effect scale (a fraction when
    relative, e.g. 0.02 for 2 %), as a non-negative number. ``None``: not a guardrail."""


@dataclass(frozen=True)
class VariantSummary:
    """One arm of one metric."""

    variant: str
    n_units: int
    estimate: float | None
    """Mean, rate, ratio or quantile (CUPED-adjusted when CUPED statistics are given)."""
    std_error: float | None
    ci_lower: float | None
    """Two-sided ``1 - alpha`` interval by ``method`` (Wilson for rates, so inside [0, 1])."""
    ci_upper: float | None
    method: Method | None
    """How the interval was computed (``None`` with ``reason``)."""
    reason: Reason | None = None
    """Why the figures are ``None``."""
    warnings: tuple[Reason, ...] = ()
    """Why computed figures should be read with care (``SMALL_SAMPLE``)."""

    @property
    def units(self) -> int:
        """Former name of ``n_units``, kept for callers not yet migrated."""
        return self.n_units


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A treatment variant against the control on one metric.

    ``absolute`` and ``relative`` each carry a fixed-horizon (interval, p-value) pair
    and, in a sequential plan, an anytime-valid pair, from the test each names. The
    decision (``significant``, ``verdict``) is made on exactly one interval, which the
    ``decision_*`` fields name and give: the plan's effect scale, anytime-valid when the
    plan is sequential, adjusted when the plan corrects for multiple testing.
    """

    variant: str
    absolute: Effect | None
    """``treatment - control`` with its intervals and p-values."""
    relative: Effect | None
    """``treatment / control - 1``."""
    decision_scale: EffectScale
    """Scale of the interval the decision is made on."""
    decision_sequential: bool
    """Whether that interval is the anytime-valid one (sequential plan)."""
    decision_adjusted: bool
    """Whether it is adjusted for multiple testing (plan's correction is not ``NONE``)."""
    decision_interval: Interval | None
    """The interval ``significant`` and ``verdict`` are decided on."""
    decision_p_value: float | None
    """The p-value of the same test: ``significant == (decision_p_value <= alpha)
    == decision_interval.excludes(0)``."""
    significant: bool
    """The decision interval excludes 0 (in the tested direction)."""
    verdict: Verdict
    """WIN / LOSS / INCONCLUSIVE under the plan and the metric's direction (and margin)."""
    decision_reason: Reason | None = None
    """Why the decision figures (and the Bayesian ones) are ``None``."""
    p_value: float | None = None
    """Unadjusted p-value of the decision test (on ``decision_scale``; anytime-valid
    when ``decision_sequential``)."""
    adjusted_p_value: float | None = None
    """``p_value`` after the plan's correction (equal to ``decision_p_value``)."""
    adjusted_ci_lower: float | None = None
    """Lower bound of ``decision_interval`` (kept under its former name)."""
    adjusted_ci_upper: float | None = None
    chance_to_beat_control: float | None = None
    """Bayesian posterior probability that the treatment is better, on ``decision_scale``."""
    expected_loss: float | None = None
    """Expected loss of shipping the treatment, on ``decision_scale``."""
    expected_loss_control: float | None = None
    chance_to_beat_control_is_fixed_horizon: bool = True
    """The Bayesian figures (chance to beat control, expected losses) use the fixed-horizon
    likelihood: they are not anytime-valid, even in a sequential plan."""
    effect_size: float | None = None
    effect_size_method: Method | None = None
    """``cohens_d`` (means) or ``cohens_h`` (proportions)."""
    effect_size_reason: Reason | None = None
    """Why ``effect_size`` is ``None`` (``NOT_DEFINED_FOR_METRIC_TYPE`` for ratios and
    quantiles)."""
    reason: Reason | None = None
    """Why ``absolute`` (and so everything but the effect size) is ``None``."""
    relative_reason: Reason | None = None
    """Why ``relative`` is ``None``."""
    warnings: tuple[Reason, ...] = ()
    """``SMALL_SAMPLE`` and ``OUTSIDE_NATURAL_RANGE``: computed, but read with care."""


@dataclass(frozen=True)
class MetricAnalysis:
    key: str
    metric_type: MetricType
    direction: Direction
    control: str
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    cuped_theta: float | None = None
    """Pooled CUPED slope when CUPED statistics were given (``None``: no CUPED)."""
    reason: Reason | None = None
    """Set when the whole metric could not be analysed (no comparisons then)."""
    non_inferiority_margin: float | None = None
    """The guardrail margin the verdicts used (from :class:`MetricInput`)."""


@dataclass(frozen=True)
class ExperimentAnalysis:
    metrics: tuple[MetricAnalysis, ...]
    srm: SrmResult | None
    """``None`` when no assignment counts were given."""
    plan: AnalysisPlan
    n_tests: int
    """Number of comparisons in the multiple-testing family."""
