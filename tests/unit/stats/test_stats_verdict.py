"""The per-metric verdict: read off the decision interval, the direction and a guardrail margin."""

from __future__ import annotations

import math

import pytest

from verdict_analysis.stats import (
    AnalysisPlan,
    Correction,
    Direction,
    EffectScale,
    Interval,
    MetricInput,
    MetricType,
    ProportionStats,
    SequentialDesign,
    Sides,
    Verdict,
    analyze_experiment,
    metric_verdict,
)

UP, DOWN = Direction.INCREASE, Direction.DECREASE


@pytest.mark.parametrize(
    ("interval", "direction", "margin", "expected"),
    [
        (Interval(0.01, 0.05), UP, None, Verdict.WIN),
        (Interval(-0.05, -0.01), UP, None, Verdict.LOSS),
        (Interval(-0.01, 0.05), UP, None, Verdict.INCONCLUSIVE),
        (Interval(-0.05, -0.01), DOWN, None, Verdict.WIN),
        (Interval(0.01, 0.05), DOWN, None, Verdict.LOSS),
        (Interval(0.0, 0.05), UP, None, Verdict.WIN),  # a bound on 0 rejects it (p = alpha)
        (Interval(0.01, math.inf), UP, None, Verdict.WIN),  # one-sided "greater"
        (Interval(-math.inf, 0.3), UP, None, Verdict.INCONCLUSIVE),
        # Guardrails: harm beyond the margin is a loss, non-inferiority a win.
        (Interval(-0.015, -0.002), UP, 0.02, Verdict.WIN),
        (Interval(-0.05, -0.025), UP, 0.02, Verdict.LOSS),
        (Interval(-0.03, -0.01), UP, 0.02, Verdict.INCONCLUSIVE),
        (Interval(0.01, 0.03), DOWN, 0.02, Verdict.INCONCLUSIVE),
        (Interval(0.021, 0.05), DOWN, 0.02, Verdict.LOSS),
        (Interval(-0.2, 0.019), DOWN, 0.02, Verdict.WIN),
        (Interval(-0.05, -0.01), UP, 0.0, Verdict.LOSS),  # margin 0: the plain rule
        (None, UP, None, Verdict.INCONCLUSIVE),
    ],
)
def test_rule(
    interval: Interval | None, direction: Direction, margin: float | None, expected: Verdict
) -> None:
    assert metric_verdict(interval, direction, margin=margin) is expected


def _conversion(treatment: int, margin: float | None = None, n: int = 10_000) -> MetricInput:
    variants = {"control": ProportionStats(n, n // 10), "t": ProportionStats(n, treatment)}
    return MetricInput("conv", MetricType.PROPORTION, "control", variants, UP, margin)


def test_analysis_verdict_uses_the_decision_interval_and_the_margin() -> None:
    plan = AnalysisPlan(effect_scale=EffectScale.RELATIVE, correction=Correction.NONE)
    win, loss, flat = (
        analyze_experiment([_conversion(k)], plan).metrics[0].comparisons[0]
        for k in (1150, 880, 1010)
    )
    assert (win.verdict, loss.verdict, flat.verdict) == (
        Verdict.WIN, Verdict.LOSS, Verdict.INCONCLUSIVE,
    )  # fmt: skip
    # As a guardrail with a 25 % margin, a significant 12 % drop is still non-inferior.
    guard = analyze_experiment([_conversion(880, margin=0.25)], plan).metrics[0]
    assert guard.non_inferiority_margin == 0.25
    assert guard.comparisons[0].verdict is Verdict.WIN
    assert guard.comparisons[0].significant  # significant, and a win under the margin


def test_one_sided_sequential_plan_decides_on_its_anytime_interval() -> None:
    plan = AnalysisPlan(sides=Sides.GREATER, sequential=SequentialDesign())
    comp = analyze_experiment([_conversion(1150)], plan).metrics[0].comparisons[0]
    assert comp.decision_sequential and comp.absolute is not None
    assert comp.decision_interval == comp.absolute.sequential_interval
    assert comp.verdict is Verdict.WIN
    worse = analyze_experiment([_conversion(800)], plan).metrics[0].comparisons[0]
    assert worse.verdict is Verdict.INCONCLUSIVE  # a "greater" test cannot show a loss
