"""Sample-ratio mismatch: chi-square and anytime-valid Dirichlet-multinomial test."""

import math

import pytest
from scipy import stats as sps

from verdict_analysis.stats import Reason, srm_test


def test_chi_square_matches_scipy_with_planned_weights() -> None:
    counts, weights = [5120, 4880, 10100], [0.25, 0.25, 0.5]
    result = srm_test(counts, weights)
    expected = [sum(counts) * w for w in weights]
    ref = sps.chisquare(counts, expected)
    assert result.statistic == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue, abs=1e-9)


def test_anytime_p_value_is_the_inverse_bayes_factor() -> None:
    counts, c = [530, 470], 1000.0
    result = srm_test(counts, prior_concentration=c)
    log_bf = (
        math.lgamma(c) - math.lgamma(c + 1000)
        + sum(math.lgamma(c / 2 + x) - math.lgamma(c / 2) - x * math.log(0.5) for x in counts)
    )  # fmt: skip
    assert result.anytime_p_value == pytest.approx(min(1.0, math.exp(-log_bf)))


def test_balanced_counts_do_not_flag_and_gross_imbalance_does() -> None:
    assert not srm_test([10_000, 10_050]).mismatch
    flagged = srm_test([10_000, 11_000])
    assert flagged.mismatch
    assert flagged.anytime_p_value is not None and flagged.p_value is not None
    assert flagged.anytime_p_value >= flagged.p_value  # the price of continuous monitoring


def test_degenerate_inputs_carry_reasons() -> None:
    assert srm_test([0, 0]).reason is Reason.EMPTY_ARM
    assert srm_test([5]).reason is Reason.INVALID_INPUT
    assert srm_test([5, 5], [1.0, 0.0]).reason is Reason.INVALID_INPUT
    assert srm_test([5, 5], [1.0]).reason is Reason.INVALID_INPUT
