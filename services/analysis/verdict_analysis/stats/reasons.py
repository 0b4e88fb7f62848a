"""Reason codes carried by results whose input could not support an inference.

Degenerate input never raises and never yields an unexplained NaN: the result
carries one of these codes and leaves the affected figures as ``None``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Why a figure could not be computed."""

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
    """Inconsistent input, e.g. statistics of the wrong type or a negative count."""
    MISSING_CONTROL = "missing_control"
    """The metric has no statistics for the control variant."""
