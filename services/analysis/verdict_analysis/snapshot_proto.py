"""Engine results to a `ResultSnapshot` proto (pure: no I/O).

Each scale's effect becomes an `Estimate` carrying its own test's intervals and p-values (the
fixed-horizon pair, and the anytime-valid pair in a sequential plan) and the names of those
tests; `decision_basis` gives the one interval `significant` and `verdict` are read from. A
figure the engine could not compute becomes NaN, never a misleading 0, and
`missing_reasons` says why for every one of them. The flat fields of the first contract stay
filled with their documented meaning (see analysis.proto).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis import stats
from verdict_analysis.decision_proto import decision_summary, diagnostics
from verdict_analysis.decision_state import DecisionSummary
from verdict_analysis.metrics.spec import MetricDiagnostics
from verdict_analysis.stopping_rules import Decision, Evaluation

_NAN = math.nan

DECISIONS = {
    Decision.KEEP_RUNNING: common_pb2.DECISION_KEEP_RUNNING,
    Decision.SHIP: common_pb2.DECISION_SHIP,
    Decision.ROLLBACK: common_pb2.DECISION_ROLLBACK,
    Decision.INCONCLUSIVE: common_pb2.DECISION_INCONCLUSIVE,
}
_SCALES = {
    stats.EffectScale.ABSOLUTE: analysis_pb2.EFFECT_SCALE_ABSOLUTE,
    stats.EffectScale.RELATIVE: analysis_pb2.EFFECT_SCALE_RELATIVE,
}
_VERDICTS = {
    stats.Verdict.WIN: analysis_pb2.METRIC_VERDICT_WIN,
    stats.Verdict.LOSS: analysis_pb2.METRIC_VERDICT_LOSS,
    stats.Verdict.INCONCLUSIVE: analysis_pb2.METRIC_VERDICT_INCONCLUSIVE,
}
_CORRECTIONS = {
    stats.Correction.NONE: experiment_pb2.MULTIPLE_TESTING_CORRECTION_NONE,
    stats.Correction.HOLM: experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM,
    stats.Correction.BENJAMINI_HOCHBERG: (
        experiment_pb2.MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG
    ),
}
_SIDES = {
    stats.Sides.TWO_SIDED: common_pb2.SIDES_TWO_SIDED,
    stats.Sides.GREATER: common_pb2.SIDES_GREATER,
    stats.Sides.LESS: common_pb2.SIDES_LESS,
}
_DIRECTIONS = {
    stats.Direction.INCREASE: experiment_pb2.DIRECTION_INCREASE,
    stats.Direction.DECREASE: experiment_pb2.DIRECTION_DECREASE,
}
NOT_DECISION_SCALE = "NOT_DECISION_SCALE"
"""Reason of `adjusted_relative_interval` when the decision is on the absolute scale."""
_UNEXPLAINED = "UNDEFINED"


def _num(value: float | None) -> float:
    return _NAN if value is None else float(value)


def _interval(lower: float | None, upper: float | None) -> common_pb2.Interval:
    return common_pb2.Interval(lower=_num(lower), upper=_num(upper))


def _why(*reasons: stats.Reason | None) -> str:
    """The first reason given, by name (the contract's spelling)."""
    return next((r.name for r in reasons if r is not None), _UNEXPLAINED)


def estimate(effect: stats.Effect | None, missing: stats.Reason | None) -> analysis_pb2.Estimate:
    """One scale's effect with both pairs of its own test."""
    if effect is None:
        return analysis_pb2.Estimate(
            estimate=_NAN,
            std_error=_NAN,
            interval=_interval(None, None),
            p_value=_NAN,
            sequential_p_value=_NAN,
            missing_reason=_why(missing),
            df=_NAN,
        )
    out = analysis_pb2.Estimate(
        estimate=effect.estimate,
        std_error=effect.std_error,
        interval=_interval(effect.ci_lower, effect.ci_upper),
        p_value=effect.p_value,
        sequential_p_value=_num(effect.sequential_p_value),
        test=effect.method.value,
        df=effect.df,
    )
    anytime = effect.sequential_interval
    if anytime is None:
        out.missing_reason = _why(effect.sequential_reason)
    else:
        out.sequential_interval.CopyFrom(_interval(anytime.lower, anytime.upper))
        method = effect.sequential_method
        out.sequential_test = method.value if method is not None else ""
    return out


def _flat_interval(effect: stats.Effect | None, sequential: bool) -> common_pb2.Interval:
    """The deprecated flat interval: the anytime-valid one in a sequential plan."""
    if effect is None:
        return _interval(None, None)
    if sequential:
        return _interval(effect.sequential_ci_lower, effect.sequential_ci_upper)
    return _interval(effect.ci_lower, effect.ci_upper)


def missing_reasons(comp: stats.Comparison) -> dict[str, str]:
    """Every figure of the comparison that is NaN, to why (keys: field names or paths)."""
    out: dict[str, str] = {}
    for scale, effect, reason in (
        ("absolute", comp.absolute, comp.reason),
        ("relative", comp.relative, comp.relative_reason or comp.reason),
    ):
        if effect is None:
            for name in (scale, f"{scale}_effect", f"{scale}_interval"):
                out[name] = _why(reason)
        elif effect.sequential_interval is None:
            for name in ("sequential_interval", "sequential_p_value"):
                out[f"{scale}.{name}"] = _why(effect.sequential_reason)
    decision = _why(comp.decision_reason, comp.reason)
    if comp.decision_interval is None:
        for name in ("decision_basis", "p_value", "adjusted_p_value"):
            out[name] = decision
    if comp.decision_scale is not stats.EffectScale.RELATIVE:
        out["adjusted_relative_interval"] = NOT_DECISION_SCALE
    elif comp.decision_interval is None:
        out["adjusted_relative_interval"] = decision
    if comp.chance_to_beat_control is None:
        out["chance_to_beat_control"] = decision
    if comp.expected_loss is None:
        out["expected_loss"] = decision
    if comp.effect_size is None:
        out["effect_size"] = _why(comp.effect_size_reason, comp.reason)
    return out


def _comparison(comp: stats.Comparison, alpha: float) -> analysis_pb2.Comparison:
    sequential = comp.decision_sequential
    reason = comp.reason or comp.relative_reason
    decision = comp.decision_interval
    relative_decision = comp.decision_scale is stats.EffectScale.RELATIVE and decision is not None
    out = analysis_pb2.Comparison(
        variant_key=comp.variant,
        absolute_effect=_num(comp.absolute.estimate if comp.absolute else None),
        absolute_interval=_flat_interval(comp.absolute, sequential),
        relative_effect=_num(comp.relative.estimate if comp.relative else None),
        relative_interval=_flat_interval(comp.relative, sequential),
        p_value=_num(comp.p_value),
        adjusted_p_value=_num(comp.adjusted_p_value),
        adjusted_relative_interval=(
            _interval(decision.lower, decision.upper)
            if relative_decision and decision is not None
            else _interval(None, None)
        ),
        chance_to_beat_control=_num(comp.chance_to_beat_control),
        expected_loss=_num(comp.expected_loss),
        effect_size=_num(comp.effect_size),
        significant=comp.significant,
        degenerate_reason=reason.name if reason is not None else "",
        absolute=estimate(comp.absolute, comp.reason),
        relative=estimate(comp.relative, comp.relative_reason or comp.reason),
        decision_basis=analysis_pb2.DecisionBasis(
            scale=_SCALES[comp.decision_scale],
            sequential=sequential,
            adjusted=comp.decision_adjusted,
            interval=(
                _interval(decision.lower, decision.upper)
                if decision is not None
                else _interval(None, None)
            ),
            p_value=_num(comp.decision_p_value),
            alpha=alpha,
        ),
        verdict=_VERDICTS[comp.verdict],
        chance_to_beat_control_fixed_horizon=comp.chance_to_beat_control_is_fixed_horizon,
        missing_reasons=missing_reasons(comp),
        warnings=[w.name for w in comp.warnings],
        effect_size_method=(
            comp.effect_size_method.value if comp.effect_size_method is not None else ""
        ),
    )
    return out


def _variant(summary: stats.VariantSummary) -> analysis_pb2.VariantSummary:
    why = summary.reason.name if summary.reason is not None else ""
    if not why:
        why = ",".join(w.name for w in summary.warnings)
    return analysis_pb2.VariantSummary(
        variant_key=summary.variant,
        units=summary.n_units,
        mean=_num(summary.estimate),
        interval=_interval(summary.ci_lower, summary.ci_upper),
        reason=why,
        method=summary.method.value if summary.method is not None else "",
    )


def _metric(
    metric: stats.MetricAnalysis,
    definition: experiment_pb2.Metric | None,
    role: int,
    variant_order: Sequence[str],
    alpha: float,
) -> analysis_pb2.MetricResult:
    rank = {key: i for i, key in enumerate(variant_order)}
    variants = sorted(metric.variants, key=lambda v: rank.get(v.variant, len(rank)))
    comparisons = sorted(metric.comparisons, key=lambda c: rank.get(c.variant, len(rank)))
    return analysis_pb2.MetricResult(
        metric_key=metric.key,
        role=role,  # type: ignore[arg-type]
        type=definition.type if definition is not None else 0,  # type: ignore[arg-type]
        variants=[_variant(v) for v in variants],
        comparisons=[_comparison(c, alpha) for c in comparisons],
        cuped_applied=metric.cuped_theta is not None,
        direction=_DIRECTIONS[metric.direction],
        non_inferiority_margin=metric.non_inferiority_margin or 0.0,
        reason=metric.reason.name if metric.reason is not None else "",
    )


def recommendation(evaluation: Evaluation) -> analysis_pb2.Recommendation:
    """The proto of a rule evaluation."""
    return analysis_pb2.Recommendation(
        decision=DECISIONS[evaluation.decision],
        variant_key=evaluation.ship_variant,
        reasons=list(evaluation.reasons),
    )


@dataclass(frozen=True)
class Observed:
    """What the collection observed besides the metrics' statistics."""

    units: Mapping[str, int]
    """Analysed units per variant."""
    excluded_units: int
    diagnostics: Sequence[MetricDiagnostics] | None = None
    """Per metric; None when not collected (segments)."""


def build_snapshot(
    experiment: experiment_pb2.Experiment,
    definitions: Mapping[str, experiment_pb2.Metric],
    variant_order: Sequence[str],
    analysis: stats.ExperimentAnalysis,
    observed: Observed,
    evaluation: Evaluation,
    *,
    decision: DecisionSummary | None = None,
    segment: tuple[str, str] | None = None,
    duration_ms: float = 0.0,
) -> analysis_pb2.ResultSnapshot:
    """The snapshot of one analysis (id and create_time are set when it is stored)."""
    roles = {m.metric_key: m.role for m in experiment.metrics}
    plan = analysis.plan
    snapshot = analysis_pb2.ResultSnapshot(
        experiment_key=experiment.key,
        units={key: int(observed.units.get(key, 0)) for key in variant_order},
        excluded_units=observed.excluded_units,
        metrics=[
            _metric(m, definitions.get(m.key), roles.get(m.key, 0), variant_order, plan.alpha)
            for m in analysis.metrics
        ],
        recommendation=recommendation(evaluation),
        duration_ms=duration_ms,
        correction=_CORRECTIONS[plan.correction],
        alpha=plan.alpha,
        sequential=plan.sequential is not None,
        sides=_SIDES[plan.sides],
    )
    if analysis.srm is not None:
        snapshot.srm.CopyFrom(
            analysis_pb2.SrmCheck(
                p_value=_num(analysis.srm.p_value),
                sequential_p_value=_num(analysis.srm.anytime_p_value),
                mismatch=analysis.srm.mismatch,
            )
        )
    if decision is not None:
        snapshot.decision.CopyFrom(decision_summary(decision))
    if observed.diagnostics is not None:
        snapshot.diagnostics.CopyFrom(diagnostics(observed.diagnostics, observed.excluded_units))
    if segment is not None:
        snapshot.segment.CopyFrom(analysis_pb2.Segment(dimension=segment[0], value=segment[1]))
    return snapshot
