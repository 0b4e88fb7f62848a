"""Normal-mixture confidence sequences (two- and one-sided) and their anytime-valid p-values."""

import math

import pytest
from scipy import integrate
from scipy import stats as sps

from verdict_analysis.stats import (
    Method,
    SampleStats,
    SequentialDesign,
    Sides,
    anytime_p_value,
    confidence_sequence_halfwidth,
    mixture_boundary,
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


def _half_normal_mixture(z: float, a: float) -> float:
    """The one-sided mixture martingale by numerical integration over lambda >= 0.

    Standardised form: S = z sqrt(V) with V = 1 (per unit of variance time), the mixing
    density 2 N(0, a) on lambda >= 0 (a = n rho^2 on this scale).
    """

    def integrand(lam: float) -> float:
        return (
            2.0
            * math.exp(lam * z - lam * lam / 2.0 - lam * lam / (2.0 * a))
            / math.sqrt(2.0 * math.pi * a)
        )

    value, _ = integrate.quad(integrand, 0.0, math.inf, epsabs=1e-13, epsrel=1e-12)
    return value


@pytest.mark.parametrize("z", [-3.0, -0.5, 0.0, 1.0, 2.5, 4.0])
@pytest.mark.parametrize("n", [200.0, 5000.0, 80_000.0])
def test_one_sided_p_value_is_one_over_the_half_normal_mixture(z: float, n: float) -> None:
    rho = mixture_rho(0.05, 5000, one_sided=True)
    a = n * rho * rho
    p = anytime_p_value(z, 1.0, n, rho, Sides.GREATER)
    assert p == pytest.approx(min(1.0, 1.0 / _half_normal_mixture(z, a)), rel=1e-8)
    assert anytime_p_value(-z, 1.0, n, rho, Sides.LESS) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("n", [100.0, 5000.0, 1e6])
def test_one_sided_boundary_inverts_the_one_sided_p_value(alpha: float, n: float) -> None:
    rho = mixture_rho(alpha, 5000, one_sided=True)
    boundary = mixture_boundary(alpha, n, rho, one_sided=True)
    assert anytime_p_value(boundary, 1.0, n, rho, Sides.GREATER) == pytest.approx(alpha, rel=1e-9)
    assert anytime_p_value(boundary * 0.999, 1.0, n, rho, Sides.GREATER) > alpha
    # Narrower than the two-sided boundary at alpha, wider than the fixed one-sided z.
    assert sps.norm.isf(alpha) < boundary < mixture_boundary(alpha, n, rho)


def test_one_sided_sequence_is_about_nine_percent_narrower_at_the_tuning_size() -> None:
    alpha, n_star = 0.05, 5000
    one = mixture_boundary(
        alpha, n_star, mixture_rho(alpha, n_star, one_sided=True), one_sided=True
    )
    two = mixture_boundary(alpha, n_star, mixture_rho(alpha, n_star))
    assert one / two == pytest.approx(0.911, abs=0.002)
    # GrowthBook's closed-form one-sided half-width (log(1 + sqrt(1 + a) / (2 alpha))) is a
    # conservative bound on this exact root: never narrower.
    rho = mixture_rho(alpha, n_star, one_sided=True)
    a = n_star * rho * rho
    closed = math.sqrt(2 * (1 + a) / a * math.log(1 + math.sqrt(1 + a) / (2 * alpha)))
    assert one <= closed < two


def test_one_sided_plan_uses_the_one_sided_boundary_in_its_direction_only() -> None:
    c = SampleStats.from_values([1.0, 2.0, 3.0, 4.0] * 500)
    t = SampleStats.from_values([1.1, 2.1, 3.2, 4.0] * 500)
    design = SequentialDesign()
    greater = welch_t_test(c, t, sides=Sides.GREATER, sequential=design).absolute
    two = welch_t_test(c, t, sequential=design).absolute
    assert greater is not None and two is not None
    assert greater.sequential_ci_upper == math.inf
    assert greater.sequential_ci_lower is not None and two.sequential_ci_lower is not None
    assert greater.sequential_ci_lower > two.sequential_ci_lower  # tighter on the tested side
    assert greater.sequential_method is Method.MIXTURE_ONE_SIDED
    assert greater.sequential_p_value is not None and two.sequential_p_value is not None
    assert greater.sequential_p_value < two.sequential_p_value
    # The other direction never rejects: its p-value is large and the bound is open.
    less = welch_t_test(c, t, sides=Sides.LESS, sequential=design).absolute
    assert less is not None and less.sequential_p_value is not None
    assert less.sequential_p_value > 0.5 and less.sequential_ci_lower == -math.inf


def test_an_infinite_negative_statistic_is_no_evidence_not_a_crash() -> None:
    # A ratio metric with a denormal denominator sum gives z = -inf; the one-sided mixture then
    # has no evidence at all (the property test found log(0) raising here).
    from verdict_analysis.stats.sequential import _log_one_sided

    assert _log_one_sided(float("-inf"), 0.5) == float("-inf")
