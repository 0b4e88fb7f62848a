"""Decision states as data: each state from the evidence that should produce it (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from asvc_data import CONTEXT, FIXED, SEQUENTIAL, analyse, conversions, latency

from verdict_analysis import stats
from verdict_analysis.decision_state import (
    MULTIPLE_EXPOSURE_SHARE,
    DecisionState,
    HealthCheck,
    Situation,
    decide,
)
from verdict_analysis.planned_sample import PlannedSample, planned_sample
from verdict_analysis.stopping_rules import Decision, Evaluation, FiredRule, RuleName

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
RUNNING = Evaluation(Decision.KEEP_RUNNING, "", (), ())
UNITS = {"control": 10_000, "treatment": 10_000}


def _situation(
    units: dict[str, int] = UNITS,
    planned: int | None = 100_000,
    days: float = 4.0,
    excluded: int = 0,
    stopped: bool = False,
) -> Situation:
    return Situation(
        units=units,
        excluded_units=excluded,
        planned=PlannedSample(planned, "the target sample size"),
        first_exposed_at=NOW - timedelta(days=days),
        now=NOW,
        stopped=stopped,
    )


def _winning(plan: stats.AnalysisPlan = SEQUENTIAL) -> stats.ExperimentAnalysis:
    """Conversion 10 % -> 13 %: a win under either plan; latency unchanged."""
    return analyse(
        [
            conversions("conversion", (10_000, 1_000), (10_000, 1_300)),
            latency("latency", 10_000, 500.0, 500.0, 100.0),
        ],
        UNITS,
        plan,
    )


def test_no_exposure_is_unhealthy_no_data() -> None:
    analysis = analyse([conversions("conversion", (0, 0), (0, 0))], {"control": 0, "treatment": 0})
    found = decide(analysis, CONTEXT, RUNNING, _situation({"control": 0, "treatment": 0}))
    assert found.state is DecisionState.UNHEALTHY
    assert [i.check for i in found.health_issues] == [HealthCheck.NO_DATA]
    assert found.headline.startswith("Unhealthy: no unit has been exposed yet")


def test_sample_ratio_mismatch_is_unhealthy_with_its_figures() -> None:
    units = {"control": 11_000, "treatment": 10_000}
    analysis = analyse([conversions("conversion", (11_000, 1_100), (10_000, 1_300))], units)
    assert analysis.srm is not None and analysis.srm.mismatch
    found = decide(analysis, CONTEXT, RUNNING, _situation(units))
    [issue] = found.health_issues
    assert issue.check is HealthCheck.SRM
    assert issue.value == analysis.srm.anytime_p_value and issue.threshold == 0.001
    assert "anytime-valid p" in issue.message and "Fix this" in found.headline
    assert found.state is DecisionState.UNHEALTHY  # the win is not read


@pytest.mark.parametrize(("excluded", "unhealthy"), [(150, False), (300, True)])
def test_units_in_several_variants_above_one_percent_are_unhealthy(
    excluded: int, unhealthy: bool
) -> None:
    # 20,000 analysed units: 150 excluded is 0.74 %, 300 is 1.48 % of the exposed units.
    found = decide(_winning(), CONTEXT, RUNNING, _situation(excluded=excluded))
    assert (found.state is DecisionState.UNHEALTHY) == unhealthy
    if unhealthy:
        [issue] = found.health_issues
        assert issue.check is HealthCheck.MULTIPLE_EXPOSURES
        assert issue.value == pytest.approx(300 / 20_300)
        assert issue.threshold == MULTIPLE_EXPOSURE_SHARE


def test_sequential_win_ships_with_an_anytime_valid_adjusted_headline() -> None:
    found = decide(_winning(), CONTEXT, RUNNING, _situation())
    assert found.state is DecisionState.SHIP and found.variant == "treatment"
    assert found.headline.startswith("Ship treatment: conversion +30.00% [")
    assert "anytime-valid, Holm-adjusted interval, alpha 0.05" in found.headline
    assert "fixed-horizon" not in found.headline


def test_fixed_horizon_win_before_the_planned_sample_keeps_running() -> None:
    """A fixed-horizon interval watched before its sample is peeking: not acted on."""
    analysis = _winning(FIXED)
    assert analysis.metrics[0].comparisons[0].verdict is stats.Verdict.WIN
    found = decide(analysis, CONTEXT, RUNNING, _situation(planned=100_000, days=4.0))
    assert found.state is DecisionState.KEEP_RUNNING
    # 20,000 units in 4 days: 5,000 a day; 80,000 to go: 16 days.
    assert found.daily_units == pytest.approx(5_000)
    assert found.days_remaining == pytest.approx(16.0)
    assert found.headline == (
        "Keep running: about 16 days left (20,000 of 100,000 planned units at 5,000 units/day)"
    )
    assert any("fixed-horizon" in r and "conversion (primary)" in r for r in found.reasons)
    reached = decide(analysis, CONTEXT, RUNNING, _situation(planned=20_000))
    assert reached.state is DecisionState.SHIP
    assert "fixed-horizon, Holm-adjusted interval" in reached.headline


def test_planned_sample_reached_without_difference_is_no_detectable_difference() -> None:
    analysis = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], UNITS)
    found = decide(analysis, CONTEXT, RUNNING, _situation(planned=20_000))
    assert found.state is DecisionState.NO_DETECTABLE_DIFFERENCE
    assert "the planned sample is reached (20,000 of 20,000 units)" in found.headline
    assert found.days_remaining is None


def test_a_stopped_experiment_without_difference_has_no_detectable_difference() -> None:
    analysis = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], UNITS)
    found = decide(analysis, CONTEXT, RUNNING, _situation(stopped=True))
    assert found.state is DecisionState.NO_DETECTABLE_DIFFERENCE
    assert "stopped before the planned sample" in found.headline


def test_guardrail_loss_rolls_back_at_any_time_even_in_a_fixed_horizon_plan() -> None:
    metrics = [
        conversions("conversion", (10_000, 1_000), (10_000, 1_300)),
        dataclasses.replace(
            latency("latency", 10_000, 500.0, 530.0, 100.0), non_inferiority_margin=0.02
        ),
    ]
    analysis = analyse(metrics, UNITS, FIXED)
    assert analysis.metrics[1].comparisons[0].verdict is stats.Verdict.LOSS
    found = decide(analysis, CONTEXT, RUNNING, _situation())
    assert found.state is DecisionState.ROLL_BACK
    assert found.headline.startswith(
        "Roll back: treatment harms guardrail latency beyond its 2.00% margin: +6.00% ["
    )
    assert "fixed-horizon" in found.headline


def test_harm_within_the_margin_does_not_roll_back() -> None:
    metrics = [
        conversions("conversion", (10_000, 1_000), (10_000, 1_300)),
        dataclasses.replace(
            latency("latency", 10_000, 500.0, 503.0, 50.0), non_inferiority_margin=0.02
        ),
    ]
    analysis = analyse(metrics, UNITS)
    assert analysis.metrics[1].comparisons[0].verdict is stats.Verdict.WIN  # non-inferior
    assert decide(analysis, CONTEXT, RUNNING, _situation()).state is DecisionState.SHIP


def test_sequential_primary_loss_rolls_back() -> None:
    analysis = analyse([conversions("conversion", (10_000, 1_300), (10_000, 1_000))], UNITS)
    found = decide(analysis, CONTEXT, RUNNING, _situation())
    assert found.state is DecisionState.ROLL_BACK
    assert found.headline.startswith("Roll back: treatment is worse on conversion: -23.08% [")


@pytest.mark.parametrize(
    ("decision", "state"),
    [
        (Decision.ROLLBACK, DecisionState.ROLL_BACK),
        (Decision.SHIP, DecisionState.SHIP),
        (Decision.INCONCLUSIVE, DecisionState.NO_DETECTABLE_DIFFERENCE),
    ],
)
def test_a_stopping_rule_decides_when_it_stops(decision: Decision, state: DecisionState) -> None:
    analysis = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], UNITS)
    rule = FiredRule(
        RuleName.MAX_DURATION, True, decision, "the rule's reason", ship_variant="treatment"
    )
    found = decide(analysis, CONTEXT, Evaluation(decision, "", (), (rule,)), _situation())
    assert found.state is state
    assert found.reasons[0] == "stopping rule max_duration: the rule's reason"


def test_traffic_unknown_in_the_first_hour_and_no_plan_without_a_sample() -> None:
    analysis = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], UNITS)
    early = decide(analysis, CONTEXT, RUNNING, _situation(days=0.5 / 24))
    assert early.state is DecisionState.KEEP_RUNNING
    assert early.daily_units is None and early.days_remaining is None
    assert "daily traffic not known yet" in early.headline
    unplanned = decide(analysis, CONTEXT, RUNNING, _situation(planned=None))
    assert unplanned.planned_units is None and unplanned.days_remaining is None
    assert unplanned.headline.startswith("Keep running: no planned sample")


def test_every_bayesian_figure_in_the_reasons_is_labelled_fixed_horizon() -> None:
    found = decide(_winning(), CONTEXT, RUNNING, _situation())
    lines = [r for r in found.reasons if "chance to beat control" in r]
    assert lines and all("chance to beat control" in r and "(fixed-horizon)" in r for r in lines)
    assert all("anytime-valid" in r for r in lines)


def test_planned_sample_from_the_target_or_the_mde_at_the_observed_baseline() -> None:
    primary = conversions("conversion", (10_000, 1_000), (10_000, 1_100))
    assert planned_sample(50_000, 0.05, primary, SEQUENTIAL).units == 50_000
    found = planned_sample(None, 0.05, primary, SEQUENTIAL, power=0.9, n_arms=3)
    want = stats.sample_size(
        stats.ProportionBaseline(0.1),
        0.05,
        relative=True,
        power=0.9,
        n_arms=3,
        sequential=SEQUENTIAL.sequential,
    )
    assert found.units == want.total and want.total is not None
    assert "control rate 0.1" in found.source
    assert planned_sample(None, 0.0, primary, SEQUENTIAL).units is None
    assert planned_sample(None, 0.05, None, SEQUENTIAL).units is None


def test_planned_sample_of_a_cuped_mean_ignores_the_variance_reduction() -> None:
    cuped = stats.CupedStats(1_000, 5_000.0, 5_000.0 * 5.0 + 999 * 4.0, 1_000.0, 2_000.0, 900.0)
    metric = stats.MetricInput(
        "m", stats.MetricType.MEAN, "control", {"control": cuped, "treatment": cuped}
    )
    found = planned_sample(None, 0.1, metric, FIXED)
    want = stats.sample_size(stats.MeanBaseline(5.0, 2.0), 0.1, relative=True)
    assert found.units == want.total


def test_a_quantile_primary_has_no_planned_sample() -> None:
    q = stats.quantile_stats_from_events([1.0, 2.0, 3.0], ["a", "b", "c"], 0.5)
    metric = stats.MetricInput(
        "p50", stats.MetricType.QUANTILE, "control", {"control": q, "treatment": q}
    )
    found = planned_sample(None, 0.1, metric, FIXED)
    assert found.units is None and "no formula" in found.source
