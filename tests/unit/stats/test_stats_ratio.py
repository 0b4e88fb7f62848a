"""Ratio metrics by the delta method, clustered by unit."""

import numpy as np
import pytest

from verdict_analysis.stats import RatioStats, Reason, ratio_test
from verdict_analysis.stats.ratio import ratio_arm


def _units(seed: int, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    responses = rng.poisson(4.0, n) + 1
    thumbs = rng.binomial(responses, rate)
    return thumbs.astype(float), responses.astype(float)


def test_variance_equals_sample_variance_of_linearised_units() -> None:
    a, b = _units(1, 400, 0.3)
    arm = ratio_arm(RatioStats.from_values(a, b))
    assert not isinstance(arm, Reason)
    r = a.sum() / b.sum()
    linearised = (a - r * b) / b.mean()
    assert arm.mean == pytest.approx(r)
    assert arm.variance_of_mean == pytest.approx(linearised.var(ddof=1) / a.size, rel=1e-9)


def test_difference_and_relative_effect() -> None:
    c = RatioStats.from_values(*_units(2, 500, 0.30))
    t = RatioStats.from_values(*_units(3, 520, 0.33))
    result = ratio_test(c, t)
    assert result.absolute is not None and result.relative is not None
    assert result.absolute.estimate == pytest.approx(t.ratio - c.ratio)
    assert result.relative.estimate == pytest.approx(t.ratio / c.ratio - 1.0)
    arm_c, arm_t = ratio_arm(c), ratio_arm(t)
    assert not isinstance(arm_c, Reason) and not isinstance(arm_t, Reason)
    se = np.sqrt(arm_c.variance_of_mean + arm_t.variance_of_mean)
    assert result.absolute.std_error == pytest.approx(se)
    assert result.absolute.ci_upper - result.absolute.ci_lower == pytest.approx(
        2 * 1.959964 * se, rel=1e-6
    )


def test_shards_merge() -> None:
    a, b = _units(4, 300, 0.2)
    merged = RatioStats.from_values(a[:100], b[:100]) + RatioStats.from_values(a[100:], b[100:])
    assert merged.n_units == 300
    assert merged.sum_num_den == pytest.approx(float(a @ b))


def test_zero_denominator_is_reported() -> None:
    zero = RatioStats.from_values([0.0, 0.0], [0.0, 0.0])
    assert ratio_test(zero, zero).reason is Reason.ZERO_DENOMINATOR


def test_empty_and_single_unit_arms_are_reported() -> None:
    ok = RatioStats.from_values(*_units(5, 50, 0.2))
    assert ratio_test(RatioStats(0, 0, 0, 0, 0, 0), ok).reason is Reason.EMPTY_ARM
    single = RatioStats.from_values([1.0], [2.0])
    assert ratio_test(ok, single).reason is Reason.INSUFFICIENT_DATA


def test_constant_ratio_in_every_unit_is_zero_variance() -> None:
    b = np.arange(1.0, 21.0)
    result = ratio_test(RatioStats.from_values(0.5 * b, b), RatioStats.from_values(0.5 * b, b))
    assert result.reason is Reason.ZERO_VARIANCE
