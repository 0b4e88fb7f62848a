"""Capping at an absolute value or a percentile."""

import numpy as np

from verdict_analysis.stats import Capping, CappingKind, cap_values, capping_thresholds


def test_absolute_cap() -> None:
    capped = cap_values([1.0, 5.0, 100.0], Capping(CappingKind.ABSOLUTE, upper=10.0))
    assert capped.tolist() == [1.0, 5.0, 10.0]


def test_percentile_cap_uses_the_pooled_quantile() -> None:
    values = np.arange(1.0, 101.0)
    lower, upper = capping_thresholds(values, Capping(upper=0.9, lower=0.1))
    assert upper == np.quantile(values, 0.9) and lower == np.quantile(values, 0.1)
    capped = cap_values(values, Capping(upper=0.9, lower=0.1))
    assert capped.max() == upper and capped.min() == lower


def test_no_bounds_and_empty_input() -> None:
    assert cap_values([3.0], Capping(CappingKind.ABSOLUTE, upper=None)).tolist() == [3.0]
    assert capping_thresholds([], Capping()) == (None, None)
