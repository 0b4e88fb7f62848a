"""The public surface of verdict_analysis.stats is pinned: changing it is a decision."""

import dataclasses

import verdict_analysis.stats as vs

EXPECTED = {
    "MAX_UNITS", "AnalysisPlan", "ArmEstimate", "BayesianPrior", "BayesianResult", "Capping",
    "CappingKind", "Comparison", "Correction", "CupedStats", "Direction", "DurationResult",
    "Effect", "EffectScale", "ExperimentAnalysis", "Interval", "MdeResult", "MeanBaseline",
    "Method", "MetricAnalysis", "MetricInput", "MetricStats", "MetricType",
    "ProportionBaseline", "ProportionStats", "ProportionTest", "QuantileStats",
    "RatioBaseline", "RatioCupedStats", "RatioStats", "Reason", "SampleSizeResult",
    "SampleStats", "SequentialDesign", "Sides", "SrmResult", "TestResult", "VariantSummary",
    "Verdict", "achieved_power", "adjust_p_values", "analyze_experiment", "anytime_p_value",
    "bayesian_summary", "benjamini_hochberg", "cap_values", "capping_thresholds", "cohens_d",
    "cohens_h", "compare", "confidence_sequence_halfwidth", "cuped_test", "cuped_theta",
    "expected_duration", "holm", "mde", "metric_verdict", "mixture_boundary", "mixture_rho",
    "outer_ci_ranks", "quantile_stats_from_events", "quantile_test", "ratio_cuped_test",
    "ratio_cuped_theta", "ratio_test", "sample_size", "srm_test", "two_proportion_z_test",
    "welch_t_test", "wilson_interval",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(vs.__all__) == EXPECTED
    assert len(vs.__all__) == len(EXPECTED)


def test_every_exported_name_resolves() -> None:
    for name in vs.__all__:
        assert getattr(vs, name) is not None


def test_defaults_are_documented_values() -> None:
    plan = vs.AnalysisPlan()
    assert plan.alpha == 0.05
    assert plan.sides is vs.Sides.TWO_SIDED
    assert plan.sequential is None
    assert plan.correction is vs.Correction.HOLM
    assert vs.SequentialDesign().tuning_sample_size == 5_000
    assert vs.BayesianPrior().proper is False
    assert plan.proportion_test is vs.ProportionTest.UNPOOLED
    assert plan.small_sample_units == 30 and plan.small_sample_successes == 5


def test_every_statistics_type_counts_units_in_n_units() -> None:
    types = (vs.SampleStats, vs.ProportionStats, vs.RatioStats, vs.CupedStats,
             vs.RatioCupedStats, vs.QuantileStats, vs.ArmEstimate, vs.VariantSummary)  # fmt: skip
    for cls in types:
        names = {f.name for f in dataclasses.fields(cls)}
        assert "n_units" in names and "n" not in names, cls
