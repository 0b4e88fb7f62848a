"""Bayesian summary under a Gaussian model: chance to beat control and expected loss.

The effect's sampling distribution is approximated as ``N(estimate, se^2)`` and
combined with a Gaussian prior ``N(m0, v0)`` (conjugate; flat when improper), as in
GrowthBook's gbstats Gaussian engine; the loss is the expected-loss criterion of
Stucchio (2015, "Bayesian A/B testing at VWO"):

    v1 = 1 / (1/se^2 + 1/v0),   m1 = v1 (estimate/se^2 + m0/v0)
    chance to beat control = Phi(s m1 / sqrt(v1))          (s = +1, or -1 if lower is better)
    expected loss (ship)   = E[max(0, -s delta)] = sd phi(s m1/sd) - s m1 Phi(-s m1/sd)
    expected loss (keep)   = E[max(0,  s delta)] = sd phi(s m1/sd) + s m1 Phi( s m1/sd)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._numeric import normal_cdf, normal_pdf
from .plan import BayesianPrior, Direction

__all__ = ["BayesianResult", "bayesian_summary"]


@dataclass(frozen=True)
class BayesianResult:
    posterior_mean: float
    posterior_sd: float
    chance_to_beat_control: float
    expected_loss: float
    """Expected loss of shipping the treatment, on the effect's scale."""
    expected_loss_control: float
    """Expected loss of keeping the control."""


def bayesian_summary(
    estimate: float,
    std_error: float,
    prior: BayesianPrior = BayesianPrior(),  # noqa: B008 (frozen value)
    direction: Direction = Direction.INCREASE,
) -> BayesianResult:
    """Posterior of the effect and decision figures; ``std_error`` must be positive."""
    mean, sd = estimate, std_error
    if prior.proper and prior.variance > 0.0:
        # Precision-weighted, written with the variance ratio so that a tiny standard
        # error neither underflows to a zero variance nor divides by zero.
        ratio = std_error * std_error / prior.variance
        mean = (estimate + prior.mean * ratio) / (1.0 + ratio)
        sd = std_error / math.sqrt(1.0 + ratio)
    sign = 1.0 if direction is Direction.INCREASE else -1.0
    z = sign * mean / sd
    return BayesianResult(
        posterior_mean=mean,
        posterior_sd=sd,
        chance_to_beat_control=normal_cdf(z),
        expected_loss=sd * normal_pdf(z) - sign * mean * normal_cdf(-z),
        expected_loss_control=sd * normal_pdf(z) + sign * mean * normal_cdf(z),
    )
