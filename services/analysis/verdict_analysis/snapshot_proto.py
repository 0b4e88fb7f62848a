"""Engine results to a `ResultSnapshot` proto (pure: no I/O).

A figure the engine could not compute (it says why in a reason) becomes NaN in the proto, never a
misleading 0, and the comparison's `degenerate_reason` names the reason. Intervals of comparisons
are the sequential ones when the plan is sequential, as the contract says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis import stats
from verdict_analysis.stopping_rules import Decision, Evaluation

_NAN = math.nan

DECISIONS = {
    Decision.KEEP_RUNNING: common_pb2.DECISION_KEEP_RUNNING,
    Decision.SHIP: common_pb2.DECISION_SHIP,
    Decision.ROLLBACK: common_pb2.DECISION_ROLLBACK,
    Decision.INCONCLUSIVE: common_pb2.DECISION_INCONCLUSIVE,
}


def _num(value: float | None) -> float:
    return _NAN if value is None else float(value)


def _interval(lower: float | None, upper: float | None) -> common_pb2.Interval:
    return common_pb2.Interval(lower=_num(lower), upper=_num(upper))


def _effect_interval(effect: stats.Effect | None, sequential: bool) -> common_pb2.Interval:
    if effect is None:
        return _interval(None, None)
    if sequential:
        return _interval(effect.sequential_ci_lower, effect.sequential_ci_upper)
    return _interval(effect.ci_lower, effect.ci_upper)


def _comparison(comp: stats.Comparison, sequential: bool) -> analysis_pb2.Comparison:
    reason = comp.reason or comp.relative_reason
    return analysis_pb2.Comparison(
        variant_key=comp.variant,
        absolute_effect=_num(comp.absolute.estimate if comp.absolute else None),
        absolute_interval=_effect_interval(comp.absolute, sequential),
        relative_effect=_num(comp.relative.estimate if comp.relative else None),
        relative_interval=_effect_interval(comp.relative, sequential),
        p_value=_num(comp.p_value),
        adjusted_p_value=_num(comp.adjusted_p_value),
        adjusted_relative_interval=_interval(comp.adjusted_ci_lower, comp.adjusted_ci_upper),
        chance_to_beat_control=_num(comp.chance_to_beat_control),
        expected_loss=_num(comp.expected_loss),
        effect_size=_num(comp.effect_size),
        significant=comp.significant,
        degenerate_reason=reason.name if reason is not None else "",
    )


def _variant(summary: stats.VariantSummary) -> analysis_pb2.VariantSummary:
    return analysis_pb2.VariantSummary(
        variant_key=summary.variant,
        units=summary.units,
        mean=_num(summary.estimate),
        interval=_interval(summary.ci_lower, summary.ci_upper),
    )


def _metric(
    metric: stats.MetricAnalysis,
    definition: experiment_pb2.Metric | None,
    role: int,
    variant_order: Sequence[str],
    sequential: bool,
) -> analysis_pb2.MetricResult:
    rank = {key: i for i, key in enumerate(variant_order)}
    variants = sorted(metric.variants, key=lambda v: rank.get(v.variant, len(rank)))
    comparisons = sorted(metric.comparisons, key=lambda c: rank.get(c.variant, len(rank)))
    return analysis_pb2.MetricResult(
        metric_key=metric.key,
        role=role,  # type: ignore[arg-type]
        type=definition.type if definition is not None else 0,  # type: ignore[arg-type]
        variants=[_variant(v) for v in variants],
        comparisons=[_comparison(c, sequential) for c in comparisons],
        cuped_applied=metric.cuped_theta is not None,
    )


def recommendation(evaluation: Evaluation) -> analysis_pb2.Recommendation:
    """The proto of a rule evaluation."""
    return analysis_pb2.Recommendation(
        decision=DECISIONS[evaluation.decision],
        variant_key=evaluation.ship_variant,
        reasons=list(evaluation.reasons),
    )


def build_snapshot(
    experiment: experiment_pb2.Experiment,
    definitions: Mapping[str, experiment_pb2.Metric],
    variant_order: Sequence[str],
    analysis: stats.ExperimentAnalysis,
    units: Mapping[str, int],
    excluded_units: int,
    evaluation: Evaluation,
    *,
    segment: tuple[str, str] | None = None,
    duration_ms: float = 0.0,
) -> analysis_pb2.ResultSnapshot:
    """The snapshot of one analysis (id and create_time are set when it is stored)."""
    roles = {m.metric_key: m.role for m in experiment.metrics}
    sequential = analysis.plan.sequential is not None
    snapshot = analysis_pb2.ResultSnapshot(
        experiment_key=experiment.key,
        units={key: int(units.get(key, 0)) for key in variant_order},
        excluded_units=excluded_units,
        metrics=[
            _metric(m, definitions.get(m.key), roles.get(m.key, 0), variant_order, sequential)
            for m in analysis.metrics
        ],
        recommendation=recommendation(evaluation),
        duration_ms=duration_ms,
    )
    if analysis.srm is not None:
        snapshot.srm.CopyFrom(
            analysis_pb2.SrmCheck(
                p_value=_num(analysis.srm.p_value),
                sequential_p_value=_num(analysis.srm.anytime_p_value),
                mismatch=analysis.srm.mismatch,
            )
        )
    if segment is not None:
        snapshot.segment.CopyFrom(analysis_pb2.Segment(dimension=segment[0], value=segment[1]))
    return snapshot
