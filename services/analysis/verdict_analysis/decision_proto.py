"""The decision state and the diagnostics as protos (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from verdict.v1 import analysis_pb2
from verdict_analysis.decision_state import DecisionState, DecisionSummary, HealthCheck
from verdict_analysis.metrics.spec import MetricDiagnostics

STATES = {
    DecisionState.KEEP_RUNNING: analysis_pb2.DECISION_STATE_KEEP_RUNNING,
    DecisionState.SHIP: analysis_pb2.DECISION_STATE_SHIP,
    DecisionState.ROLL_BACK: analysis_pb2.DECISION_STATE_ROLL_BACK,
    DecisionState.NO_DETECTABLE_DIFFERENCE: analysis_pb2.DECISION_STATE_NO_DETECTABLE_DIFFERENCE,
    DecisionState.UNHEALTHY: analysis_pb2.DECISION_STATE_UNHEALTHY,
}
CHECKS = {
    HealthCheck.SRM: analysis_pb2.HEALTH_CHECK_SRM,
    HealthCheck.MULTIPLE_EXPOSURES: analysis_pb2.HEALTH_CHECK_MULTIPLE_EXPOSURES,
    HealthCheck.NO_DATA: analysis_pb2.HEALTH_CHECK_NO_DATA,
}


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def decision_summary(summary: DecisionSummary) -> analysis_pb2.DecisionSummary:
    """The contract's `DecisionSummary`; unknown figures are NaN (planned units 0)."""
    return analysis_pb2.DecisionSummary(
        state=STATES[summary.state],
        variant_key=summary.variant,
        headline=summary.headline,
        reasons=list(summary.reasons),
        health_issues=[
            analysis_pb2.HealthIssue(
                check=CHECKS[i.check], message=i.message, value=i.value, threshold=i.threshold
            )
            for i in summary.health_issues
        ],
        days_remaining=_num(summary.days_remaining),
        planned_units=summary.planned_units or 0,
        exposed_units=summary.exposed_units,
        daily_units=_num(summary.daily_units),
    )


def diagnostics(
    metrics: Sequence[MetricDiagnostics], multiple_exposure_units: int
) -> analysis_pb2.Diagnostics:
    """The contract's `Diagnostics`."""
    return analysis_pb2.Diagnostics(
        metrics=[
            analysis_pb2.MetricDiagnostics(
                metric_key=m.key,
                events_before_exposure=m.events_before_exposure,
                events_from_unexposed_units=m.events_from_unexposed_units,
                capped_units=m.capped_units,
            )
            for m in metrics
        ],
        multiple_exposure_units=multiple_exposure_units,
    )
