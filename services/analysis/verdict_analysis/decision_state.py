"""What a person can do about an experiment now: its decision state, with reasons (pure).

In order, the first that applies:

1. UNHEALTHY when the data cannot be trusted: a sample-ratio mismatch (the engine's
   anytime-valid SRM test at the plan's threshold, whatever the SRM rule's action), more than
   :data:`MULTIPLE_EXPOSURE_SHARE` of the exposed units seen in several variants, or no unit
   exposed at all. Effects are not read while a check fails.
2. ROLL_BACK when a guardrail's verdict is LOSS (harm beyond its margin shown by the decision
   interval) at any time, or when a stopping rule stops with a roll back.
3. SHIP when a stopping rule stops with a ship.
4. Once the primary metric's verdicts may be acted on (a sequential plan: always, its intervals
   being anytime-valid; a fixed-horizon plan: once the planned sample is reached or the
   experiment stopped, since its intervals are not valid under continuous monitoring): SHIP the
   variant that wins on the first primary metric and loses on no primary metric (the largest
   effect when several do), else ROLL_BACK when some variant loses on the first primary metric.
5. NO_DETECTABLE_DIFFERENCE when a stopping rule stopped without a winner, the planned sample
   is reached, or the experiment stopped.
6. KEEP_RUNNING, with the days left: (planned − exposed) / the observed daily units.

The headline and reasons quote the decision interval of each comparison and say how it may be
read (anytime-valid or fixed-horizon, adjusted or not); the Bayesian figures are always labelled
fixed-horizon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from verdict_analysis import stats
from verdict_analysis.planned_sample import PlannedSample
from verdict_analysis.stopping_rules import Decision, Evaluation, MetricContext, MetricRole

__all__ = [
    "MULTIPLE_EXPOSURE_SHARE",
    "DecisionState",
    "DecisionSummary",
    "HealthCheck",
    "HealthIssue",
    "Situation",
    "decide",
]

MULTIPLE_EXPOSURE_SHARE = 0.01
"""Above this share of exposed units seen in several variants, the assignment (or the unit id
the callers send) is broken: excluding them no longer keeps the comparison fair."""
MIN_RATE_S = 3600.0
"""The daily rate is extrapolated from at least an hour of exposures."""
_DAY_S = 86400.0


class DecisionState(StrEnum):
    KEEP_RUNNING = "keep_running"
    SHIP = "ship"
    ROLL_BACK = "roll_back"
    NO_DETECTABLE_DIFFERENCE = "no_detectable_difference"
    UNHEALTHY = "unhealthy"


class HealthCheck(StrEnum):
    SRM = "srm"
    MULTIPLE_EXPOSURES = "multiple_exposures"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class HealthIssue:
    """A failed check: the observed value against its threshold, in words too."""

    check: HealthCheck
    message: str
    value: float
    threshold: float


@dataclass(frozen=True)
class Situation:
    """What the decision reads besides the analysis and the rules."""

    units: Mapping[str, int]
    """Analysed units per variant (the count the target sample size is compared with)."""
    excluded_units: int
    """Units seen in several variants."""
    planned: PlannedSample
    first_exposed_at: datetime | None
    now: datetime
    stopped: bool = False
    """The experiment no longer runs: this is its final analysis."""


@dataclass(frozen=True)
class DecisionSummary:
    state: DecisionState
    variant: str
    headline: str
    reasons: tuple[str, ...]
    health_issues: tuple[HealthIssue, ...]
    days_remaining: float | None
    planned_units: int | None
    exposed_units: int
    daily_units: float | None


_CORRECTIONS = {
    stats.Correction.HOLM: "Holm-adjusted",
    stats.Correction.BENJAMINI_HOCHBERG: "Benjamini-Hochberg-adjusted",
}


def _number(x: float, relative: bool) -> str:
    if math.isinf(x):
        return "+∞" if x > 0 else "-∞"
    return f"{x * 100:+.2f}%" if relative else f"{x:+.4g}"


def _effect(comp: stats.Comparison) -> stats.Effect | None:
    relative = comp.decision_scale is stats.EffectScale.RELATIVE
    return comp.relative if relative else comp.absolute


def _figure(comp: stats.Comparison, plan: stats.AnalysisPlan) -> str:
    """The decision's estimate and interval, and how they may be read."""
    effect, interval = _effect(comp), comp.decision_interval
    if effect is None or interval is None:
        return f"no figures ({(comp.decision_reason or comp.reason or 'unknown').upper()})"
    relative = comp.decision_scale is stats.EffectScale.RELATIVE
    kind = ["anytime-valid" if comp.decision_sequential else "fixed-horizon"]
    if comp.decision_adjusted and plan.correction in _CORRECTIONS:
        kind.append(_CORRECTIONS[plan.correction])
    return (
        f"{_number(effect.estimate, relative)} [{_number(interval.lower, relative)}, "
        f"{_number(interval.upper, relative)}] ({', '.join(kind)} interval, alpha {plan.alpha:g})"
    )


def _health(analysis: stats.ExperimentAnalysis, situation: Situation) -> list[HealthIssue]:
    issues = []
    analysed = sum(situation.units.values())
    exposed = analysed + situation.excluded_units
    if exposed == 0:
        issues.append(HealthIssue(HealthCheck.NO_DATA, "no unit has been exposed yet", 0.0, 0.0))
        return issues
    srm = analysis.srm
    if srm is not None and srm.mismatch and srm.anytime_p_value is not None:
        observed = ", ".join(f"{s:.3f}" for s in srm.observed_shares)
        planned = ", ".join(f"{s:.3f}" for s in srm.expected_shares)
        issues.append(
            HealthIssue(
                HealthCheck.SRM,
                f"sample ratio mismatch: observed shares [{observed}] vs planned [{planned}], "
                f"anytime-valid p = {srm.anytime_p_value:.2g} <= {analysis.plan.srm_alpha:g}",
                srm.anytime_p_value,
                analysis.plan.srm_alpha,
            )
        )
    share = situation.excluded_units / exposed
    if share > MULTIPLE_EXPOSURE_SHARE:
        issues.append(
            HealthIssue(
                HealthCheck.MULTIPLE_EXPOSURES,
                f"{situation.excluded_units:,} of {exposed:,} exposed units ({share:.1%}) were "
                f"seen in several variants (threshold {MULTIPLE_EXPOSURE_SHARE:.0%}): check that "
                "callers send a stable unit id and that variants did not change while running",
                share,
                MULTIPLE_EXPOSURE_SHARE,
            )
        )
    return issues


def _metrics(
    analysis: stats.ExperimentAnalysis, context: Mapping[str, MetricContext], role: MetricRole
) -> list[stats.MetricAnalysis]:
    return [m for m in analysis.metrics if (c := context.get(m.key)) and c.role is role]


def _verdict_line(
    metric: stats.MetricAnalysis, comp: stats.Comparison, role: MetricRole, plan: stats.AnalysisPlan
) -> str:
    margin = ""
    if role is MetricRole.GUARDRAIL and metric.non_inferiority_margin:
        margin = f", margin {metric.non_inferiority_margin:.2%}"
    chance = ""
    if comp.chance_to_beat_control is not None:
        chance = f"; chance to beat control {comp.chance_to_beat_control:.1%} (fixed-horizon)"
    return (
        f"{metric.key} ({role.value}{margin}): {comp.variant} {comp.verdict.value}: "
        f"{_figure(comp, plan)}{chance}"
    )


def _signed(metric: stats.MetricAnalysis, comp: stats.Comparison) -> float:
    effect = _effect(comp)
    estimate = effect.estimate if effect is not None else 0.0
    return estimate if metric.direction is stats.Direction.INCREASE else -estimate


def _primary_call(
    primaries: Sequence[stats.MetricAnalysis], plan: stats.AnalysisPlan
) -> tuple[DecisionState, str, str] | None:
    """SHIP or ROLL_BACK from the primary metrics' verdicts, with its headline."""
    first = primaries[0]
    losers_elsewhere = {
        c.variant for m in primaries for c in m.comparisons if c.verdict is stats.Verdict.LOSS
    }
    winners = [
        c
        for c in first.comparisons
        if c.verdict is stats.Verdict.WIN and c.variant not in losers_elsewhere
    ]
    if winners:
        best = max(winners, key=lambda c: _signed(first, c))
        headline = f"Ship {best.variant}: {first.key} {_figure(best, plan)}"
        return DecisionState.SHIP, best.variant, headline
    losers = [c for c in first.comparisons if c.verdict is stats.Verdict.LOSS]
    if losers:
        worst = min(losers, key=lambda c: _signed(first, c))
        headline = f"Roll back: {worst.variant} is worse on {first.key}: {_figure(worst, plan)}"
        return DecisionState.ROLL_BACK, "", headline
    return None


def _rate(situation: Situation, exposed: int) -> float | None:
    if situation.first_exposed_at is None or exposed == 0:
        return None
    elapsed = (situation.now - situation.first_exposed_at).total_seconds()
    return exposed / (elapsed / _DAY_S) if elapsed >= MIN_RATE_S else None


def decide(
    analysis: stats.ExperimentAnalysis,
    context: Mapping[str, MetricContext],
    evaluation: Evaluation,
    situation: Situation,
) -> DecisionSummary:
    """The decision state of one analysis (see the module docstring)."""
    plan = analysis.plan
    exposed = sum(situation.units.values())
    planned = situation.planned.units
    daily = _rate(situation, exposed)
    reached = planned is not None and exposed >= planned
    issues = _health(analysis, situation)

    def summary(
        state: DecisionState, headline: str, reasons: Sequence[str], variant: str = ""
    ) -> DecisionSummary:
        left: float | None = None
        if state is DecisionState.KEEP_RUNNING and planned is not None and daily:
            left = max(0.0, (planned - exposed) / daily)
        return DecisionSummary(
            state, variant, headline, tuple(reasons), tuple(issues), left, planned, exposed, daily
        )

    if issues:
        headline = "Unhealthy: " + "; ".join(i.message for i in issues)
        return summary(
            DecisionState.UNHEALTHY,
            headline + ". Fix this before reading any effect.",
            [i.message for i in issues],
        )
    primaries = _metrics(analysis, context, MetricRole.PRIMARY)
    guardrails = _metrics(analysis, context, MetricRole.GUARDRAIL)
    lines = [
        _verdict_line(m, c, role, plan)
        for role, group in ((MetricRole.PRIMARY, primaries), (MetricRole.GUARDRAIL, guardrails))
        for m in group
        for c in m.comparisons
    ]
    stop = evaluation.stop
    rule = [f"stopping rule {stop.rule.value}: {stop.reason}"] if stop is not None else []
    source = situation.planned.source
    plan_line = [f"no planned sample: {source}"]
    if planned is not None:
        plan_line = [f"planned sample: {exposed:,} of {planned:,} units ({source})"]
    reasons = [*rule, *lines, *plan_line]

    harmed = [(m, c) for m in guardrails for c in m.comparisons if c.verdict is stats.Verdict.LOSS]
    if harmed:
        metric, comp = harmed[0]
        headline = (
            f"Roll back: {comp.variant} harms guardrail {metric.key} beyond its "
            f"{(metric.non_inferiority_margin or 0.0):.2%} margin: {_figure(comp, plan)}"
        )
        return summary(DecisionState.ROLL_BACK, headline, reasons)
    if stop is not None and stop.decision is Decision.ROLLBACK:
        return summary(DecisionState.ROLL_BACK, f"Roll back: {stop.reason}", reasons)
    if stop is not None and stop.decision is Decision.SHIP:
        return summary(
            DecisionState.SHIP,
            f"Ship {stop.ship_variant}: {stop.reason}",
            reasons,
            stop.ship_variant,
        )
    final = reached or situation.stopped
    if primaries and (plan.sequential is not None or final):
        call = _primary_call(primaries, plan)
        if call is not None:
            state, variant, headline = call
            return summary(state, headline, reasons, variant)
    if stop is not None or final:
        if reached:
            why = f"the planned sample is reached ({exposed:,} of {planned:,} units)"
        elif stop is not None:
            why = f"stopping rule {stop.rule.value}"
        else:
            why = "the experiment stopped before the planned sample"
        figures = ""
        if primaries:
            figures = "; ".join(f"{c.variant} {_figure(c, plan)}" for c in primaries[0].comparisons)
            figures = f" ({figures})" if figures else ""
        first = primaries[0].key if primaries else "the metrics"
        return summary(
            DecisionState.NO_DETECTABLE_DIFFERENCE,
            f"No detectable difference on {first}{figures}: {why}",
            reasons,
        )
    return summary(DecisionState.KEEP_RUNNING, _keep_running(exposed, planned, daily), reasons)


def _keep_running(exposed: int, planned: int | None, daily: float | None) -> str:
    if planned is None:
        return "Keep running: no planned sample (set a target sample size or an MDE)"
    if daily is None:
        return (
            f"Keep running: {exposed:,} of {planned:,} planned units; daily traffic not known yet"
        )
    days = max(0.0, (planned - exposed) / daily)
    return (
        f"Keep running: about {math.ceil(days)} days left "
        f"({exposed:,} of {planned:,} planned units at {daily:,.0f} units/day)"
    )
