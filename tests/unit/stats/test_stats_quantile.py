"""Clustered quantile metrics: the outer confidence interval."""

import math

import numpy as np
import pytest

from verdict_analysis.stats import (
    QuantileStats,
    Reason,
    outer_ci_ranks,
    quantile_stats_from_events,
    quantile_test,
)


def _events(seed: int, units: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3.0, units) + 1
    unit_ids = np.repeat(np.arange(units), counts)
    unit_effect = rng.lognormal(0.0, 0.5, units)[unit_ids]
    return scale * unit_effect * rng.lognormal(0.0, 0.7, unit_ids.size), unit_ids


def test_estimate_is_the_ceil_order_statistic() -> None:
    x, ids = _events(1, 300)
    stats = quantile_stats_from_events(x, ids, 0.95)
    assert stats.value == np.sort(x)[math.ceil(0.95 * x.size) - 1]
    assert stats.n_events == x.size and stats.n_units == 300


def test_aggregates_are_the_documented_sql_sums() -> None:
    x, ids = _events(2, 200)
    stats = quantile_stats_from_events(x, ids, 0.5)
    counts = np.bincount(ids).astype(float)
    below = np.bincount(ids, weights=(x <= stats.value).astype(float))
    assert stats.sum_events_sq == pytest.approx(counts @ counts)
    assert stats.sum_below == pytest.approx(below.sum())
    assert stats.sum_below_sq == pytest.approx(below @ below)
    assert stats.sum_events_below == pytest.approx(counts @ below)
    lower, upper = outer_ci_ranks(stats)
    ordered = np.sort(x)
    assert (stats.lower_value, stats.upper_value) == (ordered[lower - 1], ordered[upper - 1])


def test_one_event_per_unit_gives_binomial_ranks() -> None:
    rng = np.random.default_rng(3)
    n, p = 10_000, 0.9
    x = rng.normal(size=n)
    stats = quantile_stats_from_events(x, np.arange(n), p)
    half = 1.959964 * math.sqrt(p * (1 - p) * n)
    lower, upper = outer_ci_ranks(stats)
    assert lower == pytest.approx(n * p - half, abs=2.0)
    assert upper == pytest.approx(n * p + half + 1, abs=2.0)


def test_clustering_widens_the_interval() -> None:
    x, ids = _events(4, 2000)
    clustered = quantile_stats_from_events(x, ids, 0.95)
    independent = quantile_stats_from_events(x, np.arange(x.size), 0.95)
    assert clustered.below_share_sd > 1.2 * independent.below_share_sd


def test_difference_uses_standard_errors_from_the_outer_intervals() -> None:
    c = quantile_stats_from_events(*_events(5, 1500), 0.95)
    t = quantile_stats_from_events(*_events(6, 1500, scale=1.3), 0.95)
    result = quantile_test(c, t)
    assert result.absolute is not None and result.relative is not None
    assert c.upper_value is not None and c.lower_value is not None
    assert t.upper_value is not None and t.lower_value is not None
    z = 1.959963984540054
    se_c = (c.upper_value - c.lower_value) / (2 * z)
    se_t = (t.upper_value - t.lower_value) / (2 * z)
    assert result.absolute.estimate == pytest.approx(t.value - c.value)
    assert result.absolute.std_error == pytest.approx(math.hypot(se_c, se_t))


def test_missing_order_statistics_and_empty_arms_give_reasons() -> None:
    c = quantile_stats_from_events(*_events(7, 100), 0.95)
    no_values = QuantileStats(0.95, 10, 30, 1.0, 100.0, 28.0, 90.0, 95.0)
    assert quantile_test(c, no_values).reason is Reason.INSUFFICIENT_DATA
    empty = quantile_stats_from_events([], [], 0.95)
    assert quantile_test(empty, c).reason is Reason.EMPTY_ARM


def test_identical_values_give_zero_variance() -> None:
    same = quantile_stats_from_events(np.ones(50), np.arange(50) % 10, 0.95)
    assert quantile_test(same, same).reason is Reason.ZERO_VARIANCE
