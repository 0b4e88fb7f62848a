"""Synthetic sufficient statistics built to trigger (or not) each stopping rule."""

from __future__ import annotations

from verdict_analysis import stats
from verdict_analysis.stopping_rules import MetricContext, MetricRole

SEQUENTIAL = stats.AnalysisPlan(
    sequential=stats.SequentialDesign(), effect_scale=stats.EffectScale.RELATIVE
)
FIXED = stats.AnalysisPlan(effect_scale=stats.EffectScale.RELATIVE)


def conversions(
    key: str, control: tuple[int, int], treatment: tuple[int, int]
) -> stats.MetricInput:
    """A proportion metric: (units, conversions) per arm."""
    return stats.MetricInput(
        key,
        stats.MetricType.PROPORTION,
        "control",
        {
            "control": stats.ProportionStats(*control),
            "treatment": stats.ProportionStats(*treatment),
        },
    )


def latency(
    key: str, n: int, control_mean: float, treatment_mean: float, sd: float
) -> stats.MetricInput:
    """A mean metric where lower is better, from per-arm mean and standard deviation."""

    def arm(mean: float) -> stats.SampleStats:
        return stats.SampleStats(n, n * mean, n * (sd * sd + mean * mean))

    return stats.MetricInput(
        key,
        stats.MetricType.MEAN,
        "control",
        {"control": arm(control_mean), "treatment": arm(treatment_mean)},
        stats.Direction.DECREASE,
    )


def analyse(
    metrics: list[stats.MetricInput],
    units: dict[str, int],
    plan: stats.AnalysisPlan = SEQUENTIAL,
) -> stats.ExperimentAnalysis:
    return stats.analyze_experiment(metrics, plan, assignment_counts=units)


CONTEXT = {
    "conversion": MetricContext(MetricRole.PRIMARY),
    "latency": MetricContext(MetricRole.GUARDRAIL, 0.02),
}
