"""The number of units an experiment plans for, and where that number comes from (pure).

`StoppingRules.target_sample_size` when set. Otherwise the engine's sample size
(`stats.sample_size`) for the plan's relative minimum detectable effect on the first primary
metric, at the baseline observed in the control arm so far: its rate (BINOMIAL), its mean and
per-unit standard deviation (MEAN, COUNT; with CUPED, of the unadjusted outcome, so the plan
does not count on CUPED's variance reduction), its ratio and linearised per-unit variance
(RATIO); at the plan's alpha (unadjusted for multiple testing), power (0.8 when unset), sides
and sequential design, with equal allocation over the experiment's variants. Quantile metrics
have no sample-size formula here: no planned sample then. The baseline moves a little from one
analysis to the next, and so does the plan; a fixed number needs a target sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verdict_analysis import stats
from verdict_analysis.stats.power import Baseline

__all__ = ["DEFAULT_POWER", "PlannedSample", "planned_sample"]

DEFAULT_POWER = 0.8


@dataclass(frozen=True)
class PlannedSample:
    """Total units planned (None when the plan does not say), and how they were found."""

    units: int | None
    source: str
    """In words, for the decision's reasons."""


def _baseline(control: stats.MetricStats) -> tuple[Baseline, str] | None:
    """The control arm as a sample-size baseline, and its figure in words."""
    if isinstance(control, stats.CupedStats):
        control = stats.SampleStats(control.n_units, control.sum_y, control.sum_y_sq)
    if isinstance(control, stats.RatioCupedStats):
        control = stats.RatioStats(
            control.n_units,
            control.sum_num,
            control.sum_num_sq,
            control.sum_den,
            control.sum_den_sq,
            control.sum_num_den,
        )
    n = control.n_units
    if n < 2:
        return None
    if isinstance(control, stats.ProportionStats):
        rate = control.successes / n
        return stats.ProportionBaseline(rate), f"control rate {rate:.4g}"
    if isinstance(control, stats.SampleStats):
        mean = control.sum / n
        variance = (control.sum_sq - control.sum * mean) / (n - 1)
        sd = math.sqrt(max(variance, 0.0))
        return stats.MeanBaseline(mean, sd), f"control mean {mean:.4g}, sd {sd:.4g}"
    if isinstance(control, stats.RatioStats):
        ratio = stats.RatioBaseline.from_stats(control)
        return ratio, f"control ratio {ratio.ratio:.4g}"
    return None


def planned_sample(
    target_sample_size: int | None,
    minimum_detectable_effect: float,
    primary: stats.MetricInput | None,
    plan: stats.AnalysisPlan,
    *,
    power: float = 0.0,
    n_arms: int = 2,
) -> PlannedSample:
    """The planned total (see the module docstring); `power` 0 means 0.8."""
    if target_sample_size:
        return PlannedSample(target_sample_size, "the target sample size")
    if minimum_detectable_effect <= 0.0:
        return PlannedSample(None, "no target sample size and no minimum detectable effect")
    if primary is None:
        return PlannedSample(None, "no primary metric to plan the sample on")
    control = primary.variants.get(primary.control)
    found = _baseline(control) if control is not None else None
    if found is None:
        return PlannedSample(
            None, f"no control baseline for {primary.key} yet (or no formula for its type)"
        )
    baseline, described = found
    size = stats.sample_size(
        baseline,
        minimum_detectable_effect,
        relative=True,
        alpha=plan.alpha,
        power=power or DEFAULT_POWER,
        sides=plan.sides,
        n_arms=max(2, n_arms),
        sequential=plan.sequential,
    )
    if size.total is None:
        reason = size.reason.name if size.reason is not None else "unknown"
        return PlannedSample(None, f"no sample size for {primary.key} ({reason})")
    return PlannedSample(
        size.total,
        f"the sample size for a {minimum_detectable_effect:.3g} relative MDE on {primary.key} "
        f"at the observed {described}",
    )
