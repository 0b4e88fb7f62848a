"""Machine-readable names of the procedure behind every reported figure.

Each :class:`~verdict_analysis.stats.effects.Effect` names the test that produced its
fixed-horizon interval and p-value (``method``) and, in a sequential plan, the boundary
of its anytime-valid pair (``sequential_method``); each per-variant summary names its
interval; each effect size names its measure. docs/STATISTICS.md gives every formula.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Method"]


class Method(StrEnum):
    """A named procedure; the value is stable and meant for contracts and logs."""

    WELCH_T = "welch_t"
    """Absolute difference of means: Welch's t with Welch-Satterthwaite df."""
    Z_UNPOOLED = "z_unpooled"
    """Absolute difference of rates: Wald z with the unpooled variance ``p(1-p)/n`` per arm."""
    Z_POOLED = "z_pooled"
    """Absolute difference of rates: the pooled score z (its value at 0 is the classic
    pooled z-test) and the Farrington-Manning score interval that inverts it."""
    RATIO_DELTA_METHOD = "ratio_delta_method"
    """Ratio metric (per arm and its absolute difference): delta-method z, clustered by unit."""
    CUPED_Z = "cuped_z"
    """CUPED-adjusted mean (per arm and difference): z with the regression-adjusted variance."""
    CUPED_RATIO_DELTA_METHOD = "cuped_ratio_delta_method"
    """CUPED-adjusted ratio metric: delta-method z on the linearised, adjusted ratio."""
    QUANTILE_OUTER_CI = "quantile_outer_ci"
    """Quantile metric: per arm the clustered outer interval; the difference is a z test
    with each arm's standard error recovered from its outer interval."""
    DELTA_METHOD = "delta_method"
    """Relative effect ``t/c - 1``: delta-method variance; Student's t with the absolute
    test's df when finite (means), else z."""
    STUDENT_T = "student_t"
    """Per-variant mean: Student's t interval with ``n - 1`` df."""
    WILSON = "wilson"
    """Per-variant rate: Wilson score interval (always inside [0, 1])."""
    MIXTURE_TWO_SIDED = "normal_mixture_two_sided"
    """Anytime-valid pair: two-sided normal-mixture confidence sequence."""
    MIXTURE_ONE_SIDED = "normal_mixture_one_sided"
    """Anytime-valid pair: one-sided (half-normal) mixture confidence sequence."""
    COHENS_D = "cohens_d"
    """Effect size of means: difference over the pooled standard deviation."""
    COHENS_H = "cohens_h"
    """Effect size of rates: difference of arcsine-square-root transforms."""
