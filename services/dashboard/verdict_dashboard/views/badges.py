"""The decision badge: what a person can do about an experiment now, in a few words (pure).

Read from the snapshot's `decision` (the analysis's decision state). Snapshots from an analysis
that does not fill it yet fall back to the stopping rules' `recommendation` and the SRM check,
and say so in the badge's detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2

_CHECKS = {
    analysis_pb2.HEALTH_CHECK_SRM: "SRM",
    analysis_pb2.HEALTH_CHECK_MULTIPLE_EXPOSURES: "multiple exposures",
    analysis_pb2.HEALTH_CHECK_NO_DATA: "no data",
}
FALLBACK_NOTE = "decision state not available from the analysis yet: read from its recommendation"


@dataclass(frozen=True)
class Badge:
    """A badge: `kind` picks its colour (ship, rollback, nodiff, running, unhealthy, neutral)."""

    kind: str
    label: str
    detail: str = ""


def decision_badge(snapshot: analysis_pb2.ResultSnapshot) -> Badge:
    """The badge of a running experiment's latest snapshot."""
    decision = snapshot.decision
    reasons = "; ".join(decision.reasons)
    state = decision.state
    if state == analysis_pb2.DECISION_STATE_UNHEALTHY:
        checks = [_CHECKS.get(i.check, "data") for i in decision.health_issues] or ["data"]
        return Badge("unhealthy", f"Unhealthy: {', '.join(checks)}", reasons)
    if state == analysis_pb2.DECISION_STATE_SHIP:
        return Badge("ship", f"Ship {decision.variant_key}".strip(), decision.headline or reasons)
    if state == analysis_pb2.DECISION_STATE_ROLL_BACK:
        return Badge("rollback", "Roll back", decision.headline or reasons)
    if state == analysis_pb2.DECISION_STATE_NO_DETECTABLE_DIFFERENCE:
        return Badge("nodiff", "No detectable difference", decision.headline or reasons)
    if state == analysis_pb2.DECISION_STATE_KEEP_RUNNING:
        # "Keep running", not "no difference yet": a fixed-horizon plan keeps running even
        # past a significant interval until its planned sample.
        left = decision.days_remaining
        if math.isfinite(left) and left > 0:
            label = f"Keep running — ~{max(1, math.ceil(left))} days left"
        else:
            label = "Keep running"
        return Badge("running", label, decision.headline or reasons)
    return _from_recommendation(snapshot)


def _from_recommendation(snapshot: analysis_pb2.ResultSnapshot) -> Badge:
    if snapshot.srm.mismatch:
        return Badge("unhealthy", "Unhealthy: SRM", FALLBACK_NOTE)
    rec = snapshot.recommendation
    if rec.decision == common_pb2.DECISION_SHIP:
        return Badge("ship", f"Ship {rec.variant_key}".strip(), FALLBACK_NOTE)
    if rec.decision == common_pb2.DECISION_ROLLBACK:
        return Badge("rollback", "Roll back", FALLBACK_NOTE)
    if rec.decision == common_pb2.DECISION_INCONCLUSIVE:
        return Badge("nodiff", "No detectable difference", FALLBACK_NOTE)
    return Badge("running", "Keep running", FALLBACK_NOTE)


def status_badge(
    experiment: experiment_pb2.Experiment, snapshot: analysis_pb2.ResultSnapshot | None
) -> Badge:
    """The list's and header's badge: the recorded decision once stopped, else the live one."""
    status = experiment.status
    if status == experiment_pb2.EXPERIMENT_STATUS_DRAFT:
        return Badge("neutral", "Draft — not started")
    if status in (
        experiment_pb2.EXPERIMENT_STATUS_STOPPED,
        experiment_pb2.EXPERIMENT_STATUS_ARCHIVED,
    ):
        stop = experiment.decision
        reason = stop.reason
        if stop.decision == common_pb2.DECISION_SHIP:
            return Badge("ship", f"Shipped {stop.ship_variant_key}".strip(), reason)
        if stop.decision == common_pb2.DECISION_ROLLBACK:
            return Badge("rollback", "Rolled back", reason)
        return Badge("nodiff", "Stopped: inconclusive", reason)
    if snapshot is None:
        return Badge("neutral", "Waiting for the first analysis")
    return decision_badge(snapshot)
