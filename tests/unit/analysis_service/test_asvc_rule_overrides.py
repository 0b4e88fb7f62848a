"""The override policy (pure): which fired rules stay quiet after an operator overruled them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from verdict_analysis.rule_overrides import OverrideMode, RuleOverride, suppressor
from verdict_analysis.stopping_rules import Decision, FiredRule, RuleName

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _fired(rule: RuleName, **details: object) -> FiredRule:
    return FiredRule(rule, True, Decision.SHIP, "reason", details=details)  # type: ignore[arg-type]


def _quiet(
    o: RuleOverride,
    fired: FiredRule,
    *,
    strict: set[RuleName] | None = None,
    units: int = 0,
    ran: timedelta | None = None,
) -> str | None:
    return suppressor([o], strict_fired=strict or set(), units=units, ran=ran, now=NOW)(fired)


EFFICACY = _fired(RuleName.EFFICACY, metric="conv", variant="v1")


def test_an_overridden_evidence_rule_is_quiet_on_the_same_evidence() -> None:
    o = RuleOverride(
        RuleName.EFFICACY,
        OverrideMode.OVERRIDE,
        "alice",
        "seasonal",
        baseline={"metric": "conv", "variant": "v1"},
    )
    note = _quiet(o, EFFICACY)
    assert note is not None and "alice" in note and "seasonal" in note


def test_without_figures_to_compare_it_acts_again_at_the_stricter_level() -> None:
    o = RuleOverride(
        RuleName.EFFICACY, OverrideMode.OVERRIDE, baseline={"metric": "conv", "variant": "v1"}
    )
    assert _quiet(o, EFFICACY, strict={RuleName.EFFICACY}) is None


def test_it_acts_again_on_another_variant_or_metric() -> None:
    o = RuleOverride(
        RuleName.EFFICACY, OverrideMode.OVERRIDE, baseline={"metric": "conv", "variant": "v1"}
    )
    assert _quiet(o, _fired(RuleName.EFFICACY, metric="conv", variant="v2")) is None
    assert _quiet(o, _fired(RuleName.EFFICACY, metric="rev", variant="v1")) is None


def test_an_override_of_one_rule_leaves_the_others_alone() -> None:
    o = RuleOverride(RuleName.SRM, OverrideMode.DISABLE)
    assert _quiet(o, EFFICACY) is None
    assert _quiet(o, _fired(RuleName.SRM)) is not None


def test_a_snooze_is_quiet_until_its_time_only() -> None:
    asleep = RuleOverride(RuleName.SRM, OverrideMode.SNOOZE, until=NOW + timedelta(minutes=1))
    awake = RuleOverride(RuleName.SRM, OverrideMode.SNOOZE, until=NOW - timedelta(minutes=1))
    assert _quiet(asleep, _fired(RuleName.SRM)) is not None
    assert _quiet(awake, _fired(RuleName.SRM)) is None


def test_an_overridden_target_acts_again_once_the_target_is_reached_again() -> None:
    o = RuleOverride(RuleName.TARGET_SAMPLE_SIZE, OverrideMode.OVERRIDE, baseline={"units": 1_200})
    fired = _fired(RuleName.TARGET_SAMPLE_SIZE, units=1_500, target_sample_size=1_000)
    assert _quiet(o, fired, units=2_199) is not None
    assert _quiet(o, fired, units=2_200) is None


def test_an_overridden_duration_acts_again_after_the_duration_again() -> None:
    o = RuleOverride(RuleName.MAX_DURATION, OverrideMode.OVERRIDE, baseline={"ran_s": 86_400.0})
    fired = _fired(RuleName.MAX_DURATION, max_duration_s=86_400.0)
    assert _quiet(o, fired, ran=timedelta(days=2) - timedelta(seconds=1)) is not None
    assert _quiet(o, fired, ran=timedelta(days=2)) is None


def test_the_same_effect_with_more_data_stays_quiet_and_a_doubled_one_acts() -> None:
    o = RuleOverride(
        RuleName.GUARDRAIL_HARM,
        OverrideMode.OVERRIDE,
        baseline={"metric": "latency", "variant": "v1", "relative_effect": 0.08},
    )
    same = _fired(RuleName.GUARDRAIL_HARM, metric="latency", variant="v1", relative_effect=0.09)
    worse = _fired(RuleName.GUARDRAIL_HARM, metric="latency", variant="v1", relative_effect=0.16)
    assert _quiet(o, same, strict={RuleName.GUARDRAIL_HARM}) is not None  # p fell: not news
    assert _quiet(o, worse) is None


def test_an_overridden_srm_acts_again_when_the_share_gap_doubles() -> None:
    o = RuleOverride(RuleName.SRM, OverrideMode.OVERRIDE, baseline={"max_share_gap": 0.02})
    assert _quiet(o, _fired(RuleName.SRM, max_share_gap=0.03)) is not None
    assert _quiet(o, _fired(RuleName.SRM, max_share_gap=0.04)) is None
