"""Per-variant summaries and the warnings that flag figures too fragile to read plainly.

Per arm: the estimate, its standard error and a two-sided ``1 - alpha`` interval named
by its method: Wilson for rates (inside [0, 1] at any n), Student's t for plain means,
normal with the delta-method or CUPED variance for ratios and adjusted means, the outer
interval for quantiles.

Warnings (the figures are computed but rest on a normal approximation that the sample
may not support):

* ``SMALL_SAMPLE`` on an arm with fewer than ``plan.small_sample_units`` units, and on a
  comparison when either arm has, or when a proportion arm has fewer than
  ``plan.small_sample_successes`` successes or failures (``n p >= 5``, ``n (1-p) >= 5``);
* ``OUTSIDE_NATURAL_RANGE`` on a proportion comparison whose absolute interval (fixed,
  anytime or decision) leaves [-1, 1] or whose relative interval goes below -1.
"""

from __future__ import annotations

import math

from ._numeric import critical_value
from .effects import ArmEstimate, Effect
from .methods import Method
from .plan import AnalysisPlan
from .proportions import wilson_interval
from .quantile import QuantileStats
from .reasons import Reason
from .results import MetricStats, VariantSummary
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats

__all__ = ["arm_method", "comparison_warnings", "summarise"]


def arm_method(stats: MetricStats) -> Method:
    """The per-arm interval's method for this kind of statistics."""
    if isinstance(stats, ProportionStats):
        return Method.WILSON
    if isinstance(stats, SampleStats):
        return Method.STUDENT_T
    if isinstance(stats, CupedStats):
        return Method.CUPED_Z
    if isinstance(stats, RatioStats):
        return Method.RATIO_DELTA_METHOD
    if isinstance(stats, RatioCupedStats):
        return Method.CUPED_RATIO_DELTA_METHOD
    return Method.QUANTILE_OUTER_CI


def _small(stats: MetricStats, plan: AnalysisPlan) -> bool:
    return stats.n_units < plan.small_sample_units


def summarise(
    name: str, stats: MetricStats, arm: ArmEstimate | Reason, plan: AnalysisPlan
) -> VariantSummary:
    """One arm's summary at the plan's alpha."""
    units = stats.n_units
    if isinstance(arm, Reason):
        return VariantSummary(name, units, None, None, None, None, None, arm)
    warnings = (Reason.SMALL_SAMPLE,) if _small(stats, plan) else ()
    se = math.sqrt(arm.variance_of_mean)
    method = arm_method(stats)
    if isinstance(stats, QuantileStats):
        lower, upper = stats.lower_value, stats.upper_value
    elif isinstance(stats, ProportionStats):
        wilson = wilson_interval(stats, plan.alpha)
        lower, upper = wilson.lower, wilson.upper
    else:
        half = critical_value(1.0 - plan.alpha / 2.0, arm.df) * se
        lower, upper = arm.mean - half, arm.mean + half
    return VariantSummary(name, units, arm.mean, se, lower, upper, method, None, warnings)


def _few_events(stats: MetricStats, plan: AnalysisPlan) -> bool:
    if not isinstance(stats, ProportionStats):
        return False
    failures = stats.n_units - stats.successes
    return min(stats.successes, failures) < plan.small_sample_successes


def _out_of_range(absolute: Effect | None, relative: Effect | None) -> bool:
    """A rate difference outside [-1, 1], or a rate's relative lift below -1."""
    for effect, high in ((absolute, 1.0), (relative, math.inf)):
        if effect is None:
            continue
        for interval in (effect.interval, effect.sequential_interval):
            if interval is not None and not interval.within(-1.0, high):
                return True
    return False


def comparison_warnings(
    control: MetricStats,
    treatment: MetricStats,
    plan: AnalysisPlan,
    absolute: Effect | None,
    relative: Effect | None,
) -> tuple[Reason, ...]:
    """Warnings of one comparison from its arms and its effects' intervals (the decision
    interval is checked when it is set, by :mod:`.analysis`)."""
    found: list[Reason] = []
    if any(_small(s, plan) or _few_events(s, plan) for s in (control, treatment)):
        found.append(Reason.SMALL_SAMPLE)
    if isinstance(control, ProportionStats) and _out_of_range(absolute, relative):
        found.append(Reason.OUTSIDE_NATURAL_RANGE)
    return tuple(found)
