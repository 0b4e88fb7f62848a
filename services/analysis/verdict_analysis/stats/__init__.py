"""Verdict's statistics engine: pure functions from sufficient statistics to typed results.

No I/O and no global state; numpy and scipy only. Inputs are additive frozen
statistics (``a + b`` merges shards and days; every type counts its units in
``n_units``); results are frozen dataclasses whose reason fields explain any figure
left as ``None``. Typical use::

    from verdict_analysis import stats as vs

    control = vs.SampleStats(n_units=3407, sum=1396.87, sum_sq=52377.9767)
    treatment = vs.SampleStats(n_units=3461, sum=2422.7, sum_sq=134698.29)
    result = vs.welch_t_test(control, treatment)
    result.relative.estimate, result.relative.ci_lower, result.relative.p_value

    analysis = vs.analyze_experiment(
        [vs.MetricInput("revenue", vs.MetricType.MEAN, "control",
                        {"control": control, "treatment": treatment})],
        vs.AnalysisPlan(sequential=vs.SequentialDesign()),
    )

The public surface, by role:

* inputs: ``SampleStats``, ``ProportionStats``, ``RatioStats``, ``CupedStats``,
  ``RatioCupedStats``, ``QuantileStats`` (+ ``quantile_stats_from_events``,
  ``outer_ci_ranks``), ``MetricInput``, ``MetricStats``;
* settings: ``AnalysisPlan`` with ``Sides``, ``Correction``, ``EffectScale``,
  ``ProportionTest``, ``SequentialDesign``, ``BayesianPrior``; ``Direction``, ``MetricType``;
* the analysis: ``analyze_experiment`` -> ``ExperimentAnalysis`` of ``MetricAnalysis``
  (``VariantSummary`` per arm, ``Comparison`` per treatment, each with ``Effect`` s);
  ``Interval`` (with ``excludes``), ``Method`` (names of tests), ``Reason`` (why a figure
  is missing or flagged), ``Verdict`` and ``metric_verdict``;
* single tests: ``welch_t_test``, ``two_proportion_z_test``, ``ratio_test``,
  ``cuped_test``, ``ratio_cuped_test``, ``quantile_test`` (-> ``TestResult``), ``compare``
  over ``ArmEstimate`` s; ``wilson_interval``; ``cohens_d``, ``cohens_h``;
* sequential: ``mixture_rho``, ``mixture_boundary``, ``confidence_sequence_halfwidth``,
  ``anytime_p_value``; SRM: ``srm_test`` -> ``SrmResult``; multiple testing: ``holm``,
  ``benjamini_hochberg``, ``adjust_p_values``; Bayesian: ``bayesian_summary`` ->
  ``BayesianResult``;
* design: ``sample_size`` -> ``SampleSizeResult``, ``mde`` -> ``MdeResult``,
  ``achieved_power``, ``expected_duration`` -> ``DurationResult``, over ``MeanBaseline``,
  ``ProportionBaseline``, ``RatioBaseline``; ``MAX_UNITS``;
* capping: ``Capping``, ``CappingKind``, ``cap_values``, ``capping_thresholds``.

See docs/STATISTICS.md for every method's formula, source and validation.
"""

from .analysis import analyze_experiment
from .bayesian import BayesianResult, bayesian_summary
from .capping import Capping, CappingKind, cap_values, capping_thresholds
from .cuped import cuped_test, cuped_theta, ratio_cuped_test, ratio_cuped_theta
from .effects import ArmEstimate, Effect, TestResult, compare
from .interval import Interval
from .means import cohens_d, welch_t_test
from .methods import Method
from .multiple import adjust_p_values, benjamini_hochberg, holm
from .plan import (
    AnalysisPlan,
    BayesianPrior,
    Correction,
    Direction,
    EffectScale,
    MetricType,
    ProportionTest,
    SequentialDesign,
    Sides,
)
from .power import (
    MAX_UNITS,
    DurationResult,
    MdeResult,
    MeanBaseline,
    ProportionBaseline,
    RatioBaseline,
    SampleSizeResult,
    achieved_power,
    expected_duration,
    mde,
    sample_size,
)
from .proportions import cohens_h, two_proportion_z_test, wilson_interval
from .quantile import QuantileStats, outer_ci_ranks, quantile_stats_from_events, quantile_test
from .ratio import ratio_test
from .reasons import Reason
from .results import (
    Comparison,
    ExperimentAnalysis,
    MetricAnalysis,
    MetricInput,
    MetricStats,
    VariantSummary,
)
from .sequential import (
    anytime_p_value,
    confidence_sequence_halfwidth,
    mixture_boundary,
    mixture_rho,
)
from .srm import SrmResult, srm_test
from .sufficient import CupedStats, ProportionStats, RatioCupedStats, RatioStats, SampleStats
from .verdict import Verdict, metric_verdict

__all__ = [
    "MAX_UNITS",
    "AnalysisPlan",
    "ArmEstimate",
    "BayesianPrior",
    "BayesianResult",
    "Capping",
    "CappingKind",
    "Comparison",
    "Correction",
    "CupedStats",
    "Direction",
    "DurationResult",
    "Effect",
    "EffectScale",
    "ExperimentAnalysis",
    "Interval",
    "MdeResult",
    "MeanBaseline",
    "Method",
    "MetricAnalysis",
    "MetricInput",
    "MetricStats",
    "MetricType",
    "ProportionBaseline",
    "ProportionStats",
    "ProportionTest",
    "QuantileStats",
    "RatioBaseline",
    "RatioCupedStats",
    "RatioStats",
    "Reason",
    "SampleSizeResult",
    "SampleStats",
    "SequentialDesign",
    "Sides",
    "SrmResult",
    "TestResult",
    "VariantSummary",
    "Verdict",
    "achieved_power",
    "adjust_p_values",
    "analyze_experiment",
    "anytime_p_value",
    "bayesian_summary",
    "benjamini_hochberg",
    "cap_values",
    "capping_thresholds",
    "cohens_d",
    "cohens_h",
    "compare",
    "confidence_sequence_halfwidth",
    "cuped_test",
    "cuped_theta",
    "expected_duration",
    "holm",
    "mde",
    "metric_verdict",
    "mixture_boundary",
    "mixture_rho",
    "outer_ci_ranks",
    "quantile_stats_from_events",
    "quantile_test",
    "ratio_cuped_test",
    "ratio_cuped_theta",
    "ratio_test",
    "sample_size",
    "srm_test",
    "two_proportion_z_test",
    "welch_t_test",
    "wilson_interval",
]
