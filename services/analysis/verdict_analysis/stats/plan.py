"""Analysis settings: frozen values with documented defaults, read once and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AnalysisPlan",
    "BayesianPrior",
    "Correction",
    "Direction",
    "EffectScale",
    "MetricType",
    "ProportionTest",
    "SequentialDesign",
    "Sides",
]


class Sides(StrEnum):
    """Alternative hypothesis on ``treatment - control``."""

    TWO_SIDED = "two-sided"
    GREATER = "greater"
    """Treatment is higher than control."""
    LESS = "less"
    """Treatment is lower than control."""


class Correction(StrEnum):
    """Multiple-testing correction over every metric x variant comparison."""

    NONE = "none"
    HOLM = "holm"
    """Holm (1979) step-down: controls the family-wise error rate."""
    BENJAMINI_HOCHBERG = "bh"
    """Benjamini & Hochberg (1995) step-up: controls the false discovery rate."""


class EffectScale(StrEnum):
    """Which effect drives the decision, the headline p-value, its correction and the
    Bayesian figures."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"


class Direction(StrEnum):
    """Which way a metric should move for the treatment to be better."""

    INCREASE = "increase"
    DECREASE = "decrease"


class ProportionTest(StrEnum):
    """Which two-proportion test gives the absolute effect's intervals and p-values."""

    UNPOOLED = "unpooled"
    """Wald z with the unpooled variance ``p_c(1-p_c)/n_c + p_t(1-p_t)/n_t``."""
    POOLED = "pooled"
    """Score z with the variance restricted to the null (pooled at 0: the classic z-test);
    its interval is the Farrington-Manning score interval, found by root finding."""


class MetricType(StrEnum):
    MEAN = "mean"
    """Per-unit mean: ``SampleStats`` or, with CUPED, ``CupedStats``."""
    PROPORTION = "proportion"
    """Per-unit conversion: ``ProportionStats``."""
    RATIO = "ratio"
    """Ratio of per-unit sums: ``RatioStats`` or, with CUPED, ``RatioCupedStats``."""
    QUANTILE = "quantile"
    """Quantile of events clustered by unit: ``QuantileStats``."""


@dataclass(frozen=True)
class SequentialDesign:
    """Normal-mixture confidence sequence (Howard et al. 2021; Waudby-Smith et al. 2023)."""

    tuning_sample_size: int = 5_000
    """N*: total units (both arms) at which the sequence is tightest."""


@dataclass(frozen=True)
class BayesianPrior:
    """Gaussian prior on the effect, on the plan's ``effect_scale``."""

    proper: bool = False
    """False: flat (improper) prior, the posterior is the likelihood."""
    mean: float = 0.0
    """Prior mean of the effect (used only when ``proper``)."""
    variance: float = 0.09
    """Prior variance of the effect (sd 0.3, i.e. +-30% on the relative scale)."""


@dataclass(frozen=True)
class AnalysisPlan:
    """Settings for :func:`analyze_experiment`."""

    alpha: float = 0.05
    """Type I error rate of each test (before correction) and 1 - interval level."""
    sides: Sides = Sides.TWO_SIDED
    """Alternative hypothesis on treatment - control."""
    sequential: SequentialDesign | None = None
    """When set, adds anytime-valid intervals and p-values, which then drive decisions."""
    correction: Correction = Correction.HOLM
    """Correction across all metric x variant comparisons."""
    effect_scale: EffectScale = EffectScale.ABSOLUTE
    """Scale of the decision: its effect's p-value is the headline one, corrected, and
    decides ``significant`` and the verdict; the Bayesian figures use the same effect."""
    prior: BayesianPrior = field(default_factory=BayesianPrior)
    """Prior for chance to beat control and expected loss."""
    proportion_test: ProportionTest = ProportionTest.UNPOOLED
    """Test of the absolute effect of proportion metrics (intervals always match it)."""
    small_sample_units: int = 30
    """Fewer units than this in an arm flag its figures ``SMALL_SAMPLE``."""
    small_sample_successes: int = 5
    """Fewer successes, or failures, than this in a proportion arm flag the comparison
    ``SMALL_SAMPLE`` (the usual ``n p >= 5`` condition of the normal approximation)."""
    variant_weights: Mapping[str, float] | None = None
    """Planned traffic weights for SRM (need not sum to 1); ``None`` means equal."""
    srm_alpha: float = 0.001
    """Threshold at which the SRM check flags a mismatch."""
    srm_prior_concentration: float = 1_000.0
    """Dirichlet concentration of the anytime-valid SRM test (Lindon & Malek 2022)."""
