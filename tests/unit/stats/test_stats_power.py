"""Power, sample size, MDE, sequential inflation and duration."""

import math

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import power_proportions_2indep

from verdict_analysis.stats import (
    MAX_UNITS,
    MeanBaseline,
    ProportionBaseline,
    RatioBaseline,
    RatioStats,
    Reason,
    SequentialDesign,
    Sides,
    achieved_power,
    expected_duration,
    mde,
    sample_size,
)
from verdict_analysis.stats.power import SMALL_SAMPLE_UNITS


def test_published_two_proportion_sample_size() -> None:
    result = sample_size(ProportionBaseline(0.34), 0.003, alpha=0.05, power=0.85)
    assert result.per_arm == 448_675
    assert result.total == 897_350  # G*Power reports 897,348 (it rounds the total)


@pytest.mark.parametrize("n", [20, 63, 500, 10_000])
@pytest.mark.parametrize("sides", list(Sides))
def test_mean_power_matches_statsmodels(n: int, sides: Sides) -> None:
    alt = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[sides.value]
    effect = 0.3 if sides is not Sides.LESS else -0.3
    ours = achieved_power(MeanBaseline(10.0, 2.0), effect * 2.0, n, sides=sides)
    ref = NormalIndPower().power(effect, n, 0.05, ratio=1.0, alternative=alt)
    assert ours == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize(
    ("p", "diff", "n"), [(0.1, 0.02, 3000), (0.5, -0.05, 800), (0.34, 0.003, 448_675)]
)
def test_proportion_power_matches_statsmodels(p: float, diff: float, n: int) -> None:
    ours = achieved_power(ProportionBaseline(p), diff, n)
    ref = power_proportions_2indep(diff, p, n, return_results=False)
    assert ours == pytest.approx(ref, abs=1e-6)


def test_mean_sample_size_matches_statsmodels_solver() -> None:
    result = sample_size(MeanBaseline(10.0, 2.0), 0.5, power=0.8)
    ref = NormalIndPower().solve_power(0.25, nobs1=None, alpha=0.05, power=0.8)
    # Closed form ignores the wrong-direction tail (~1e-7 of power): differs by < 0.01 unit.
    assert result.per_arm == math.ceil(ref)
    assert achieved_power(MeanBaseline(10.0, 2.0), 0.5, result.per_arm) >= 0.8


def test_relative_mde_and_round_trip() -> None:
    baseline = MeanBaseline(10.0, 4.0)
    size = sample_size(baseline, 0.05, relative=True, power=0.9)
    assert size.absolute_mde == pytest.approx(0.5)
    assert size.per_arm is not None
    back = mde(baseline, size.per_arm, power=0.9)
    assert back.absolute is not None and back.relative is not None
    assert back.absolute <= 0.5 and back.absolute == pytest.approx(0.5, rel=1e-3)
    assert back.relative == pytest.approx(back.absolute / 10.0)


def test_proportion_mde_inverts_sample_size() -> None:
    result = mde(ProportionBaseline(0.34), 448_675, power=0.85)
    assert result.absolute == pytest.approx(0.003, rel=1e-5)


def test_ratio_baseline_uses_delta_method_variance() -> None:
    stats = RatioStats(1000, 3000.0, 12000.0, 10000.0, 110000.0, 33000.0)
    baseline = RatioBaseline.from_stats(stats)
    r = 0.3
    var = (baseline.var_num - 2 * r * baseline.cov + r * r * baseline.var_den) / 10.0**2
    assert baseline.unit_variance == pytest.approx(var)
    result = sample_size(baseline, 0.01)
    z = 1.959963984540054 + 0.8416212335729143
    assert result.per_arm == math.ceil(z**2 * 2 * var / 0.01**2)


def test_sequential_design_inflates_the_sample_size() -> None:
    fixed = sample_size(MeanBaseline(0.0, 1.0), 0.05)
    seq = sample_size(MeanBaseline(0.0, 1.0), 0.05, sequential=SequentialDesign())
    assert seq.sequential_inflation is not None and seq.per_arm is not None
    assert fixed.per_arm is not None and seq.fixed_per_arm == fixed.per_arm
    assert 1.2 < seq.sequential_inflation < 3.0
    assert seq.per_arm == math.ceil(fixed.per_arm * seq.sequential_inflation - 1e-9)
    seq_mde = mde(MeanBaseline(0.0, 1.0), seq.per_arm, sequential=SequentialDesign())
    assert seq_mde.absolute == pytest.approx(0.05, rel=1e-3)


def test_more_arms_scale_the_total() -> None:
    result = sample_size(ProportionBaseline(0.2), 0.01, n_arms=4)
    assert result.per_arm is not None and result.total == 4 * result.per_arm


def test_expected_duration_from_daily_traffic() -> None:
    assert expected_duration(897_350, 50_000).days == 18
    assert expected_duration(897_350, 50_000, traffic_fraction=0.5).days == 36
    assert expected_duration(100, 0).reason is Reason.INVALID_INPUT


def test_invalid_inputs_return_reasons() -> None:
    assert sample_size(ProportionBaseline(0.99), 0.05).reason is Reason.INVALID_INPUT
    assert sample_size(MeanBaseline(1.0, 0.0), 0.05).reason is Reason.ZERO_VARIANCE
    assert sample_size(MeanBaseline(1.0, 1.0), 0.0).reason is Reason.INVALID_INPUT
    assert mde(ProportionBaseline(0.5), 3).reason is Reason.INSUFFICIENT_DATA
    assert mde(MeanBaseline(1.0, 1.0), 0).reason is Reason.INVALID_INPUT


def test_degenerate_ratio_and_zero_baselines_return_reasons() -> None:
    zero_den = RatioBaseline(1.0, 0.0, 1.0, 1.0, 1.0)
    assert sample_size(zero_den, 0.1).reason is Reason.ZERO_DENOMINATOR
    assert mde(zero_den, 100).reason is Reason.ZERO_DENOMINATOR
    assert sample_size(RatioBaseline.from_stats(RatioStats(0, 0, 0, 0, 0, 0)), 0.1).reason is (
        Reason.ZERO_DENOMINATOR
    )
    zero_mean = mde(MeanBaseline(0.0, 1.0), 100)
    assert zero_mean.absolute is not None and zero_mean.relative is None
    assert zero_mean.reason is Reason.CONTROL_MEAN_ZERO


def test_sizes_beyond_the_documented_maximum_are_out_of_range_not_an_overflow() -> None:
    tiny = sample_size(MeanBaseline(10.0, 5.0), 1e-12, relative=True)
    assert tiny.per_arm is None and tiny.reason is Reason.OUT_OF_RANGE
    huge_sd = sample_size(MeanBaseline(10.0, 1e200), 0.1)
    assert huge_sd.reason is Reason.OUT_OF_RANGE
    assert sample_size(MeanBaseline(10.0, 1e300), 0.1).reason is Reason.OUT_OF_RANGE
    just_below = sample_size(MeanBaseline(0.0, 1.0), 6e-6)
    assert just_below.total is not None and 10**11 < just_below.total <= MAX_UNITS
    many_arms = sample_size(MeanBaseline(0.0, 1.0), 6e-6, n_arms=10)
    assert many_arms.total is None and many_arms.reason is Reason.OUT_OF_RANGE
    seq = sample_size(MeanBaseline(0.0, 1.0), 3e-6, sequential=SequentialDesign())
    assert seq.per_arm is None and seq.reason is Reason.OUT_OF_RANGE


def test_power_at_or_below_alpha_is_invalid() -> None:
    assert sample_size(MeanBaseline(1.0, 1.0), 0.1, power=0.05).reason is Reason.INVALID_INPUT
    assert sample_size(MeanBaseline(1.0, 1.0), 0.1, power=0.04).reason is Reason.INVALID_INPUT
    assert mde(MeanBaseline(1.0, 1.0), 100, power=0.01).reason is Reason.INVALID_INPUT


def test_small_designs_are_flagged_and_never_below_one_unit() -> None:
    big_effect = sample_size(MeanBaseline(10.0, 1.0), 5.0)
    assert big_effect.per_arm is not None and 1 <= big_effect.per_arm < SMALL_SAMPLE_UNITS
    assert big_effect.warnings == (Reason.SMALL_SAMPLE,)
    assert sample_size(MeanBaseline(10.0, 1.0), 0.1).warnings == ()


def test_mde_outside_its_range_has_a_reason() -> None:
    assert mde(MeanBaseline(1.0, 1e300), 10).reason is Reason.OUT_OF_RANGE
    assert mde(MeanBaseline(1.0, 1.0), MAX_UNITS + 1).reason is Reason.INVALID_INPUT
    assert mde(MeanBaseline(1e-320, 1.0), 100).reason is Reason.OUT_OF_RANGE


@pytest.mark.parametrize("sides", [Sides.GREATER, Sides.LESS])
def test_one_sided_sequential_design_uses_the_one_sided_boundary(sides: Sides) -> None:
    base = MeanBaseline(0.0, 1.0)
    two = sample_size(base, 0.05, sequential=SequentialDesign())
    one = sample_size(base, 0.05, sides=sides, sequential=SequentialDesign())
    fixed_one = sample_size(base, 0.05, sides=sides)
    assert two.per_arm is not None and one.per_arm is not None and fixed_one.per_arm is not None
    assert fixed_one.per_arm < one.per_arm < two.per_arm
    back = mde(base, one.per_arm, sides=sides, sequential=SequentialDesign())
    assert back.absolute == pytest.approx(0.05, rel=1e-3)
