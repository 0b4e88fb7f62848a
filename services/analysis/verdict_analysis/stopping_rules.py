"""Stopping rules (pure): from an analysis and the experiment's rules to a decision and its reasons.

Rules, in order of precedence:

1. SRM: a sample-ratio mismatch (anytime-valid p-value at or below the threshold) makes every
   effect untrustworthy. STOP stops the experiment as inconclusive; ALERT only alerts. While a
   mismatch stands, efficacy never ships.
2. Guardrail harm: a guardrail's relative interval (sequential when the plan is) lies entirely
   beyond its non-inferiority margin on the harmful side: roll back to control.
3. Efficacy: every primary metric's sequential relative interval excludes zero in the desired
   direction for a variant, each variant having at least ``min_units_per_variant`` units: ship
   it (the largest lift on the first primary when several qualify). Needs a sequential plan:
   a fixed-horizon interval watched every minute would not keep its error rate.
4. Target sample size: the fixed-horizon design point; the decision follows the adjusted test of
   the primary metric (ship a significant winner, roll back a significant loser, else
   inconclusive).
5. Maximum duration: stop, inconclusive (the contract of ``StoppingRules.max_duration``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from verdict_analysis import stats

__all__ = [
    "Decision",
    "Evaluation",
    "FiredRule",
    "MetricContext",
    "MetricRole",
    "RuleName",
    "Rules",
    "SrmPolicy",
    "evaluate",
]


class SrmPolicy(StrEnum):
    IGNORE = "ignore"
    ALERT = "alert"
    STOP = "stop"


class MetricRole(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    GUARDRAIL = "guardrail"


class Decision(StrEnum):
    KEEP_RUNNING = "keep_running"
    SHIP = "ship"
    ROLLBACK = "rollback"
    INCONCLUSIVE = "inconclusive"


class RuleName(StrEnum):
    SRM = "srm"
    GUARDRAIL_HARM = "guardrail_harm"
    EFFICACY = "efficacy"
    TARGET_SAMPLE_SIZE = "target_sample_size"
    MAX_DURATION = "max_duration"


@dataclass(frozen=True)
class Rules:
    """An experiment's stopping rules; ``None``/``False`` disables a rule."""

    max_duration: timedelta | None = None
    target_sample_size: int | None = None
    efficacy: bool = False
    min_units_per_variant: int = 0
    guardrail_harm: bool = False
    srm: SrmPolicy = SrmPolicy.ALERT


@dataclass(frozen=True)
class MetricContext:
    """What the rules need to know about a metric beyond its analysis."""

    role: MetricRole
    non_inferiority_margin: float = 0.0


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired: whether it stops, the decision, and its figures for the audit log."""

    rule: RuleName
    stops: bool
    decision: Decision
    reason: str
    ship_variant: str = ""
    details: Mapping[str, float | str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """The recommended decision, its reasons, and the rules that fired (stopping one first)."""

    decision: Decision
    ship_variant: str
    reasons: tuple[str, ...]
    fired: tuple[FiredRule, ...]

    @property
    def stop(self) -> FiredRule | None:
        """The rule that stops the experiment, if any."""
        return next((f for f in self.fired if f.stops), None)


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def horizon(sequential: bool) -> str:
    """How a figure may be read: every figure in a reason names its horizon, so that a
    fixed-horizon one is never mistaken for one safe to watch continuously."""
    return "anytime-valid" if sequential else "fixed-horizon"


def _interval(effect: stats.Effect, sequential: bool) -> tuple[float, float] | None:
    if sequential:
        if effect.sequential_ci_lower is None or effect.sequential_ci_upper is None:
            return None
        return effect.sequential_ci_lower, effect.sequential_ci_upper
    return effect.ci_lower, effect.ci_upper


def _harm_beyond(direction: stats.Direction, interval: tuple[float, float], margin: float) -> bool:
    lower, upper = interval
    if direction is stats.Direction.INCREASE:
        return upper < -margin
    return lower > margin


def _wins(direction: stats.Direction, interval: tuple[float, float]) -> bool:
    lower, upper = interval
    return lower > 0.0 if direction is stats.Direction.INCREASE else upper < 0.0


def _srm(analysis: stats.ExperimentAnalysis, rules: Rules) -> FiredRule | None:
    srm = analysis.srm
    if srm is None or not srm.mismatch or rules.srm is SrmPolicy.IGNORE:
        return None
    p = srm.anytime_p_value if srm.anytime_p_value is not None else math.nan
    observed = ", ".join(f"{s:.3f}" for s in srm.observed_shares)
    expected = ", ".join(f"{s:.3f}" for s in srm.expected_shares)
    reason = (
        f"sample ratio mismatch: observed shares [{observed}] vs planned [{expected}], "
        f"anytime-valid p = {p:.2g} <= {analysis.plan.srm_alpha:g}"
    )
    return FiredRule(
        RuleName.SRM,
        stops=rules.srm is SrmPolicy.STOP,
        decision=Decision.INCONCLUSIVE,
        reason=reason,
        details={
            "rule": RuleName.SRM.value,
            "p_value": p,
            "chi_square_p_value": srm.p_value if srm.p_value is not None else math.nan,
            "threshold": analysis.plan.srm_alpha,
            "observed_shares": observed,
            "max_share_gap": max(
                (
                    abs(o - e)
                    for o, e in zip(srm.observed_shares, srm.expected_shares, strict=False)
                ),
                default=0.0,
            ),
            "expected_shares": expected,
        },
    )


def _guardrails(
    analysis: stats.ExperimentAnalysis, context: Mapping[str, MetricContext]
) -> FiredRule | None:
    sequential = analysis.plan.sequential is not None
    for metric in analysis.metrics:
        ctx = context.get(metric.key)
        if ctx is None or ctx.role is not MetricRole.GUARDRAIL:
            continue
        for comp in metric.comparisons:
            if comp.relative is None:
                continue
            interval = _interval(comp.relative, sequential)
            if interval is None:
                continue
            if _harm_beyond(metric.direction, interval, ctx.non_inferiority_margin):
                reason = (
                    f"guardrail {metric.key}: {comp.variant} moved {_pct(comp.relative.estimate)} "
                    f"[{_pct(interval[0])}, {_pct(interval[1])}] ({horizon(sequential)} "
                    "unadjusted interval), harm beyond the "
                    f"{ctx.non_inferiority_margin * 100:.2f}% margin ({metric.direction.value} "
                    "is good): roll back to control"
                )
                return FiredRule(
                    RuleName.GUARDRAIL_HARM,
                    stops=True,
                    decision=Decision.ROLLBACK,
                    reason=reason,
                    details={
                        "rule": RuleName.GUARDRAIL_HARM.value,
                        "metric": metric.key,
                        "variant": comp.variant,
                        "relative_effect": comp.relative.estimate,
                        "interval_lower": interval[0],
                        "interval_upper": interval[1],
                        "margin": ctx.non_inferiority_margin,
                        "sequential": sequential,
                    },
                )
    return None


def _primaries(
    analysis: stats.ExperimentAnalysis, context: Mapping[str, MetricContext]
) -> list[stats.MetricAnalysis]:
    return [
        m
        for m in analysis.metrics
        if (c := context.get(m.key)) is not None and c.role is MetricRole.PRIMARY
    ]


def _efficacy(
    analysis: stats.ExperimentAnalysis,
    context: Mapping[str, MetricContext],
    units: Mapping[str, int],
    rules: Rules,
) -> tuple[FiredRule | None, str | None]:
    """The efficacy stop, or why it did not fire (None when the rule is off)."""
    if not rules.efficacy:
        return None, None
    if analysis.plan.sequential is None:
        return None, "efficacy stopping needs a sequential plan; not applied"
    primaries = _primaries(analysis, context)
    if not primaries:
        return None, "efficacy stopping needs a primary metric"
    smallest = min(units.values(), default=0)
    if smallest < rules.min_units_per_variant:
        return None, (
            f"efficacy waits for {rules.min_units_per_variant} units per variant "
            f"(smallest arm: {smallest})"
        )
    winners: list[tuple[float, str, tuple[float, float]]] = []
    first = primaries[0]
    for comp in first.comparisons:
        intervals = []
        for metric in primaries:
            match = next((c for c in metric.comparisons if c.variant == comp.variant), None)
            effect = match.relative if match is not None else None
            interval = _interval(effect, True) if effect is not None else None
            if interval is None or not _wins(metric.direction, interval):
                break
            intervals.append(interval)
        else:
            if comp.relative is not None:
                sign = 1.0 if first.direction is stats.Direction.INCREASE else -1.0
                winners.append((sign * comp.relative.estimate, comp.variant, intervals[0]))
    if not winners:
        return None, None
    _, variant, interval = max(winners)
    best = next(c for c in first.comparisons if c.variant == variant)
    assert best.relative is not None
    reason = (
        f"efficacy: {variant} moved {first.key} by {_pct(best.relative.estimate)} with "
        f"anytime-valid interval [{_pct(interval[0])}, {_pct(interval[1])}] excluding zero "
        f"({first.direction.value} is good): ship {variant}"
    )
    return FiredRule(
        RuleName.EFFICACY,
        stops=True,
        decision=Decision.SHIP,
        reason=reason,
        ship_variant=variant,
        details={
            "rule": RuleName.EFFICACY.value,
            "metric": first.key,
            "variant": variant,
            "relative_effect": best.relative.estimate,
            "interval_lower": interval[0],
            "interval_upper": interval[1],
            "p_value": best.p_value if best.p_value is not None else math.nan,
            "min_units_per_variant": rules.min_units_per_variant,
        },
    ), None


def _final_decision(
    analysis: stats.ExperimentAnalysis, context: Mapping[str, MetricContext]
) -> tuple[Decision, str, str]:
    """Decision at the design point: the adjusted test of the first primary metric."""
    primaries = _primaries(analysis, context)
    if not primaries:
        return Decision.INCONCLUSIVE, "", "no primary metric"
    metric = primaries[0]
    label = horizon(analysis.plan.sequential is not None)
    good = [c for c in metric.comparisons if c.significant and c.relative is not None]
    sign = 1.0 if metric.direction is stats.Direction.INCREASE else -1.0
    better = [c for c in good if c.relative is not None and sign * c.relative.estimate > 0]
    if better:
        best = max(better, key=lambda c: sign * (c.relative.estimate if c.relative else 0.0))
        assert best.relative is not None
        return (
            Decision.SHIP,
            best.variant,
            f"{metric.key}: {best.variant} {_pct(best.relative.estimate)}, {label} adjusted p = "
            f"{best.adjusted_p_value:.3g}",
        )
    if good:
        worst = good[0]
        assert worst.relative is not None
        return (
            Decision.ROLLBACK,
            "",
            f"{metric.key}: {worst.variant} {_pct(worst.relative.estimate)} is worse, {label} "
            f"adjusted p = {worst.adjusted_p_value:.3g}",
        )
    return Decision.INCONCLUSIVE, "", f"{metric.key}: no significant difference"


def _target(
    analysis: stats.ExperimentAnalysis,
    context: Mapping[str, MetricContext],
    units: Mapping[str, int],
    rules: Rules,
) -> FiredRule | None:
    total = sum(units.values())
    if rules.target_sample_size is None or total < rules.target_sample_size:
        return None
    decision, variant, why = _final_decision(analysis, context)
    return FiredRule(
        RuleName.TARGET_SAMPLE_SIZE,
        stops=True,
        decision=decision,
        ship_variant=variant,
        reason=f"target sample size reached: {total} >= {rules.target_sample_size} units; {why}",
        details={
            "rule": RuleName.TARGET_SAMPLE_SIZE.value,
            "units": total,
            "target_sample_size": rules.target_sample_size,
        },
    )


def _duration(rules: Rules, started_at: datetime | None, now: datetime) -> FiredRule | None:
    if rules.max_duration is None or started_at is None:
        return None
    ran = now - started_at
    if ran < rules.max_duration:
        return None
    return FiredRule(
        RuleName.MAX_DURATION,
        stops=True,
        decision=Decision.INCONCLUSIVE,
        reason=(
            f"maximum duration reached: ran {ran.total_seconds() / 3600:.1f} h >= "
            f"{rules.max_duration.total_seconds() / 3600:.1f} h"
        ),
        details={
            "rule": RuleName.MAX_DURATION.value,
            "ran_s": ran.total_seconds(),
            "max_duration_s": rules.max_duration.total_seconds(),
        },
    )


def _status_lines(
    analysis: stats.ExperimentAnalysis, context: Mapping[str, MetricContext]
) -> list[str]:
    """The primary metrics' relative effects, each interval with its own test's p-value (both
    anytime-valid in a sequential plan) and the Bayesian figure labelled fixed-horizon."""
    sequential = analysis.plan.sequential is not None
    label = horizon(sequential)
    lines = []
    for metric in _primaries(analysis, context):
        for comp in metric.comparisons:
            effect = comp.relative
            interval = _interval(effect, sequential) if effect is not None else None
            p = None
            if effect is not None:
                p = effect.sequential_p_value if sequential else effect.p_value
            if effect is None or interval is None or p is None:
                reason = comp.reason or comp.relative_reason or metric.reason
                lines.append(f"{metric.key}: {comp.variant} not testable yet ({reason})")
                continue
            chance = comp.chance_to_beat_control
            bayes = (
                ""
                if chance is None
                else (f", chance to beat control = {chance * 100:.1f}% (fixed-horizon)")
            )
            lines.append(
                f"{metric.key}: {comp.variant} {_pct(effect.estimate)} "
                f"[{_pct(interval[0])}, {_pct(interval[1])}] ({label} unadjusted interval), "
                f"{label} p = {p:.3g}{bayes}"
            )
    return lines


def evaluate(
    analysis: stats.ExperimentAnalysis,
    context: Mapping[str, MetricContext],
    units: Mapping[str, int],
    rules: Rules,
    *,
    started_at: datetime | None,
    now: datetime,
    suppress: Callable[[FiredRule], str | None] | None = None,
) -> Evaluation:
    """Applies the rules in precedence order; the first stopping rule decides.

    `suppress` (see `rule_overrides`) keeps operators' overrides: a fired rule for which it
    returns a note does not act (no stop, no alert); the note joins the reasons.
    """
    fired: list[FiredRule] = []
    notes: list[str] = []
    srm = _srm(analysis, rules)
    if srm is not None:
        fired.append(srm)
    if rules.guardrail_harm and (harm := _guardrails(analysis, context)) is not None:
        fired.append(harm)
    if srm is None:
        efficacy, note = _efficacy(analysis, context, units, rules)
        if efficacy is not None:
            fired.append(efficacy)
        if note is not None:
            notes.append(note)
    elif rules.efficacy:
        notes.append("efficacy suspended while the sample ratio mismatches")
    for rule in (_target(analysis, context, units, rules), _duration(rules, started_at, now)):
        if rule is not None:
            fired.append(rule)
    if suppress is not None:
        acting = []
        for rule in fired:
            quiet = suppress(rule)
            if quiet is None:
                acting.append(rule)
            else:
                notes.append(f"{quiet}; would have: {rule.reason}")
        fired = acting
    stopping = next((f for f in fired if f.stops), None)
    reasons: Sequence[str] = [f.reason for f in fired] + notes
    if stopping is not None:
        ordered = (stopping, *(f for f in fired if f is not stopping))
        return Evaluation(stopping.decision, stopping.ship_variant, tuple(reasons), ordered)
    status = _status_lines(analysis, context) or ["no primary metric results yet"]
    return Evaluation(Decision.KEEP_RUNNING, "", (*reasons, *status), tuple(fired))
