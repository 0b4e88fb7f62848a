"""Gaussian chance to beat control and expected loss."""

import numpy as np
import pytest
from scipy import integrate, stats

from verdict_analysis.stats import BayesianPrior, Direction, bayesian_summary


def test_flat_prior_chance_is_normal_cdf_of_z() -> None:
    result = bayesian_summary(0.3, 0.2)
    assert result.chance_to_beat_control == pytest.approx(stats.norm.cdf(1.5))
    assert result.posterior_mean == pytest.approx(0.3)


def test_expected_losses_match_numerical_integration() -> None:
    mean, sd = 0.1, 0.25
    result = bayesian_summary(mean, sd)
    pdf = stats.norm(mean, sd).pdf
    ship, _ = integrate.quad(lambda d: max(0.0, -d) * pdf(d), -5, 5, points=[0.0])
    keep, _ = integrate.quad(lambda d: max(0.0, d) * pdf(d), -5, 5, points=[0.0])
    assert result.expected_loss == pytest.approx(ship, abs=1e-8)
    assert result.expected_loss_control == pytest.approx(keep, abs=1e-8)


def test_lower_is_better_flips_the_chance() -> None:
    up = bayesian_summary(0.3, 0.2, direction=Direction.INCREASE)
    down = bayesian_summary(0.3, 0.2, direction=Direction.DECREASE)
    assert up.chance_to_beat_control + down.chance_to_beat_control == pytest.approx(1.0)


def test_proper_prior_shrinks_towards_its_mean() -> None:
    prior = BayesianPrior(proper=True, mean=0.0, variance=0.01)
    result = bayesian_summary(0.3, 0.1, prior)
    assert result.posterior_mean == pytest.approx(0.15)
    assert result.posterior_sd == pytest.approx(np.sqrt(0.005))
