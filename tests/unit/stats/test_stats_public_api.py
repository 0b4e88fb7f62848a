"""The public surface of verdict_analysis.stats is pinned: changing it is a decision."""

import verdict_analysis.stats as vs

EXPECTED = {
    "AnalysisPlan", "ArmEstimate", "BayesianPrior", "BayesianResult", "Capping", "CappingKind",
    "Comparison", "Correction", "CupedStats", "Direction", "DurationResult", "Effect",
    "EffectScale", "ExperimentAnalysis", "MdeResult", "MeanBaseline", "MetricAnalysis",
    "MetricInput", "MetricStats", "MetricType", "ProportionBaseline", "ProportionStats",
    "QuantileStats", "RatioBaseline", "RatioCupedStats", "RatioStats", "Reason",
    "SampleSizeResult", "SampleStats", "SequentialDesign", "Sides", "SrmResult", "TestResult",
    "VariantSummary", "achieved_power", "adjust_p_values", "analyze_experiment",
    "anytime_p_value", "bayesian_summary", "benjamini_hochberg", "cap_values",
    "capping_thresholds", "cohens_d", "cohens_h", "compare", "confidence_sequence_halfwidth",
    "cuped_test", "cuped_theta", "expected_duration", "holm", "mde", "mixture_rho",
    "outer_ci_ranks", "quantile_stats_from_events", "quantile_test", "ratio_cuped_test",
    "ratio_cuped_theta", "ratio_test", "sample_size", "srm_test", "two_proportion_z_test",
    "welch_t_test",
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
