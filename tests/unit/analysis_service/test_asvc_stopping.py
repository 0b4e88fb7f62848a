"""Each stopping rule fires on data built to trigger it, and not on data built not to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asvc_data import CONTEXT, FIXED, analyse, conversions, latency

from verdict_analysis import stats
from verdict_analysis.stopping_rules import (
    Decision,
    Evaluation,
    RuleName,
    Rules,
    SrmPolicy,
    evaluate,
)

NOW = datetime(2025, 1, 15, tzinfo=UTC)
BALANCED = {"control": 10_000, "treatment": 10_000}
OFF = Rules(srm=SrmPolicy.IGNORE)


def _evaluate(
    analysis: stats.ExperimentAnalysis,
    rules: Rules,
    units: dict[str, int] = BALANCED,
    started_at: datetime | None = None,
) -> Evaluation:
    return evaluate(analysis, CONTEXT, units, rules, started_at=started_at, now=NOW)


def _winning() -> stats.ExperimentAnalysis:
    return analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_300))], BALANCED)


def _flat() -> stats.ExperimentAnalysis:
    return analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], BALANCED)


def test_efficacy_ships_the_variant_whose_sequential_interval_excludes_zero() -> None:
    result = _evaluate(
        _winning(), Rules(efficacy=True, min_units_per_variant=1_000, srm=SrmPolicy.IGNORE)
    )
    assert result.decision is Decision.SHIP
    assert result.ship_variant == "treatment"
    assert result.stop is not None and result.stop.rule is RuleName.EFFICACY
    assert result.stop.details["interval_lower"] > 0


def test_efficacy_does_not_fire_on_a_flat_primary() -> None:
    result = _evaluate(_flat(), Rules(efficacy=True, srm=SrmPolicy.IGNORE))
    assert result.decision is Decision.KEEP_RUNNING
    assert result.stop is None


def test_efficacy_waits_for_the_minimum_sample() -> None:
    result = _evaluate(
        _winning(), Rules(efficacy=True, min_units_per_variant=20_000, srm=SrmPolicy.IGNORE)
    )
    assert result.stop is None
    assert any("20000 units per variant" in r for r in result.reasons)


def test_efficacy_needs_a_sequential_plan() -> None:
    fixed = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_300))], BALANCED, FIXED)
    result = _evaluate(fixed, Rules(efficacy=True, srm=SrmPolicy.IGNORE))
    assert result.stop is None


def test_efficacy_does_not_ship_a_variant_that_is_worse() -> None:
    losing = analyse([conversions("conversion", (10_000, 1_300), (10_000, 1_000))], BALANCED)
    assert _evaluate(losing, Rules(efficacy=True, srm=SrmPolicy.IGNORE)).stop is None


def test_guardrail_harm_beyond_margin_rolls_back() -> None:
    analysis = analyse(
        [
            conversions("conversion", (5_000, 500), (5_000, 505)),
            latency("latency", 5_000, 100.0, 110.0, 20.0),
        ],
        {"control": 5_000, "treatment": 5_000},
    )
    result = _evaluate(analysis, Rules(guardrail_harm=True, efficacy=True, srm=SrmPolicy.IGNORE))
    assert result.decision is Decision.ROLLBACK
    assert result.stop is not None and result.stop.rule is RuleName.GUARDRAIL_HARM
    assert result.stop.details["metric"] == "latency"
    assert result.stop.details["interval_lower"] > 0.02


def test_guardrail_within_margin_does_not_fire() -> None:
    analysis = analyse(
        [
            conversions("conversion", (5_000, 500), (5_000, 505)),
            latency("latency", 5_000, 100.0, 100.5, 20.0),
        ],
        {"control": 5_000, "treatment": 5_000},
    )
    assert _evaluate(analysis, Rules(guardrail_harm=True, srm=SrmPolicy.IGNORE)).stop is None


def test_guardrail_improvement_does_not_fire() -> None:
    analysis = analyse(
        [latency("latency", 5_000, 110.0, 100.0, 20.0)], {"control": 5_000, "treatment": 5_000}
    )
    assert _evaluate(analysis, Rules(guardrail_harm=True, srm=SrmPolicy.IGNORE)).stop is None


def _mismatched() -> tuple[stats.ExperimentAnalysis, dict[str, int]]:
    units = {"control": 10_000, "treatment": 11_000}
    return analyse([conversions("conversion", (10_000, 1_000), (11_000, 1_430))], units), units


def test_srm_stop_policy_stops_inconclusive_and_suspends_efficacy() -> None:
    analysis, units = _mismatched()
    result = _evaluate(analysis, Rules(srm=SrmPolicy.STOP, efficacy=True), units)
    assert result.stop is not None and result.stop.rule is RuleName.SRM
    assert result.decision is Decision.INCONCLUSIVE
    assert all(f.rule is not RuleName.EFFICACY for f in result.fired)


def test_srm_alert_policy_alerts_without_stopping() -> None:
    analysis, units = _mismatched()
    result = _evaluate(analysis, Rules(srm=SrmPolicy.ALERT), units)
    assert result.stop is None
    assert [f.rule for f in result.fired] == [RuleName.SRM]
    assert result.decision is Decision.KEEP_RUNNING


def test_srm_ignore_policy_does_nothing() -> None:
    analysis, units = _mismatched()
    assert _evaluate(analysis, Rules(srm=SrmPolicy.IGNORE), units).fired == ()


def test_srm_does_not_fire_on_balanced_counts() -> None:
    assert _evaluate(_flat(), Rules(srm=SrmPolicy.STOP)).fired == ()


def test_target_sample_size_stops_with_the_fixed_horizon_decision() -> None:
    fixed = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_300))], BALANCED, FIXED)
    result = _evaluate(fixed, Rules(target_sample_size=20_000, srm=SrmPolicy.IGNORE))
    assert result.stop is not None and result.stop.rule is RuleName.TARGET_SAMPLE_SIZE
    assert result.decision is Decision.SHIP and result.ship_variant == "treatment"
    flat = analyse([conversions("conversion", (10_000, 1_000), (10_000, 1_010))], BALANCED, FIXED)
    assert _evaluate(flat, Rules(target_sample_size=20_000, srm=SrmPolicy.IGNORE)).decision is (
        Decision.INCONCLUSIVE
    )


def test_target_sample_size_not_reached_keeps_running() -> None:
    result = _evaluate(_flat(), Rules(target_sample_size=20_001, srm=SrmPolicy.IGNORE))
    assert result.stop is None and result.decision is Decision.KEEP_RUNNING


def test_max_duration_stops_inconclusive_once_elapsed() -> None:
    rules = Rules(max_duration=timedelta(days=14), srm=SrmPolicy.IGNORE)
    late = _evaluate(_flat(), rules, started_at=NOW - timedelta(days=14, minutes=1))
    assert late.stop is not None and late.stop.rule is RuleName.MAX_DURATION
    assert late.decision is Decision.INCONCLUSIVE
    early = _evaluate(_flat(), rules, started_at=NOW - timedelta(days=13))
    assert early.stop is None


def test_no_rules_keep_running_with_status_reasons() -> None:
    result = _evaluate(_winning(), OFF)
    assert result.decision is Decision.KEEP_RUNNING
    assert any(r.startswith("conversion: treatment +30.00%") for r in result.reasons)


def test_status_reasons_name_the_horizon_of_every_figure() -> None:
    """A sequential plan's p-value and interval are anytime-valid and said so; the Bayesian
    chance beside them is labelled fixed-horizon. A fixed plan's figures say fixed-horizon."""
    (sequential,) = [r for r in _evaluate(_winning(), OFF).reasons if r.startswith("conversion")]
    assert "(anytime-valid unadjusted interval), anytime-valid p = " in sequential
    assert sequential.endswith("(fixed-horizon)") and "chance to beat control" in sequential
    effect = _winning().metrics[0].comparisons[0].relative
    assert effect is not None and effect.sequential_p_value is not None
    assert f"anytime-valid p = {effect.sequential_p_value:.3g}," in sequential
    fixed_analysis = analyse(
        [conversions("conversion", (10_000, 1_000), (10_000, 1_300))],
        {"control": 10_000, "treatment": 10_000},
        FIXED,
    )
    fixed = evaluate(
        fixed_analysis, CONTEXT, {"control": 10_000, "treatment": 10_000}, OFF,
        started_at=None, now=NOW,
    )  # fmt: skip
    (line,) = [r for r in fixed.reasons if r.startswith("conversion")]
    assert "fixed-horizon p = " in line and "anytime-valid" not in line


def test_guardrail_harm_takes_precedence_over_efficacy() -> None:
    analysis = analyse(
        [
            conversions("conversion", (10_000, 1_000), (10_000, 1_300)),
            latency("latency", 10_000, 100.0, 110.0, 20.0),
        ],
        BALANCED,
    )
    result = _evaluate(analysis, Rules(guardrail_harm=True, efficacy=True, srm=SrmPolicy.IGNORE))
    assert result.decision is Decision.ROLLBACK
