"""Reason codes: why a figure is missing, or why a present figure should not be trusted.

Degenerate input never raises and never yields an unexplained NaN: the result carries
one of these codes and leaves the affected figures as ``None``. The same codes serve as
warnings (``warnings`` fields) on figures that are computed but unreliable.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Why a figure could not be computed, or why it is flagged."""

    EMPTY_ARM = "empty_arm"
    """An arm has no units (or no events for a quantile metric)."""
    INSUFFICIENT_DATA = "insufficient_data"
    """Too few units for a variance (fewer than two per arm)."""
    ZERO_VARIANCE = "zero_variance"
    """Both arms have zero variance: the difference has no sampling error to test."""
    CONTROL_MEAN_ZERO = "control_mean_zero"
    """The control's mean is zero, so a relative effect is undefined."""
    ZERO_DENOMINATOR = "zero_denominator"
    """A ratio metric's denominator sums to zero in an arm."""
    INVALID_INPUT = "invalid_input"
    """Inconsistent input, e.g. statistics of the wrong type, a negative count, a
    non-finite sum, more successes than units, or sums whose variance overflows."""
    MISSING_CONTROL = "missing_control"
    """The metric has no statistics for the control variant."""
    NOT_DEFINED_FOR_METRIC_TYPE = "not_defined_for_metric_type"
    """The figure has no definition for this metric type (e.g. Cohen's d of a ratio)."""
    NOT_SEQUENTIAL = "not_sequential"
    """Anytime-valid figures are computed only when the plan is sequential."""
    OUT_OF_RANGE = "out_of_range"
    """A result beyond what the method answers: finite input whose estimate or variance
    overflows a float, a sample size above :data:`~verdict_analysis.stats.power.MAX_UNITS`,
    an MDE below 1e-15."""
    SMALL_SAMPLE = "small_sample"
    """Warning: too few units (or, for proportions, too few successes or failures) for
    the normal approximation behind the interval and p-value; read them as indicative."""
    OUTSIDE_NATURAL_RANGE = "outside_natural_range"
    """Warning: an interval extends beyond the figure's natural range (a difference of
    rates beyond +-1, a relative lift of a rate below -100 %), a sign that the normal
    approximation does not hold at this sample."""
