"""Normal-mixture confidence sequence and its anytime-valid p-value."""

import math

import pytest

from verdict_analysis.stats import (
    SampleStats,
    SequentialDesign,
    anytime_p_value,
    confidence_sequence_halfwidth,
    mixture_rho,
    welch_t_test,
)


def test_rho_formula() -> None:
    alpha, n_star = 0.05, 5000
    expected = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)
    assert mixture_rho(alpha, n_star) == pytest.approx(expected)


def test_halfwidth_formula_of_waudby_smith_et_al() -> None:
    se, n, alpha = 0.1, 4000.0, 0.05
    rho = mixture_rho(alpha, 5000)
    s = se * math.sqrt(n)
    expected = s * math.sqrt(
        2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha)
    )
    assert confidence_sequence_halfwidth(se, n, alpha, rho) == pytest.approx(expected)


@pytest.mark.parametrize("estimate", [0.05, 0.2, 0.3, 0.5])
def test_anytime_p_value_inverts_the_sequence(estimate: float) -> None:
    se, n, alpha = 0.1, 3000.0, 0.05
    rho = mixture_rho(alpha, 5000)
    half = confidence_sequence_halfwidth(se, n, alpha, rho)
    p = anytime_p_value(estimate, se, n, rho)
    assert (p <= alpha) == (abs(estimate) > half)
    # At the boundary the p-value is exactly alpha.
    assert anytime_p_value(half, se, n, rho) == pytest.approx(alpha)


def test_sequence_is_wider_than_fixed_interval_at_every_sample_size() -> None:
    rho = mixture_rho(0.05, 5000)
    for n in (100.0, 5000.0, 1e6):
        assert confidence_sequence_halfwidth(1.0, n, 0.05, rho) > 1.96


def test_tuning_sample_size_is_a_parameter() -> None:
    c = SampleStats.from_values([1.0, 2.0, 3.0, 4.0] * 250)
    t = SampleStats.from_values([1.2, 2.1, 3.3, 4.0] * 250)
    small = welch_t_test(c, t, sequential=SequentialDesign(tuning_sample_size=2000))
    large = welch_t_test(c, t, sequential=SequentialDesign(tuning_sample_size=200_000))
    assert small.absolute is not None and large.absolute is not None
    assert small.absolute.sequential_ci_lower != large.absolute.sequential_ci_lower
