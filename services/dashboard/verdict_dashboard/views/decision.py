"""The decision panel of the Results tab: the analysis's decision state with its headline, the
time left, the failed health checks and the reasons (pure).

Read from `ResultSnapshot.decision`. A snapshot from an analysis that does not fill it yet shows
the badge read from the recommendation (see `badges`), with its reasons and no figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verdict.v1 import analysis_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.views.badges import Badge, decision_badge

CHECK_NAMES = {
    analysis_pb2.HEALTH_CHECK_SRM: "Sample-ratio mismatch",
    analysis_pb2.HEALTH_CHECK_MULTIPLE_EXPOSURES: "Units in several variants",
    analysis_pb2.HEALTH_CHECK_NO_DATA: "No data",
}


@dataclass(frozen=True)
class HealthLine:
    """One failed health check."""

    name: str
    message: str


@dataclass(frozen=True)
class DecisionPanel:
    """What the panel shows."""

    badge: Badge
    headline: str
    facts: tuple[tuple[str, str], ...]
    """(label, value): days left, planned and exposed units, daily units."""
    health: tuple[HealthLine, ...]
    reasons: tuple[str, ...]
    available: bool
    """False for a snapshot without a decision state (the badge is then the fallback's)."""


def _facts(decision: analysis_pb2.DecisionSummary) -> tuple[tuple[str, str], ...]:
    facts = []
    if decision.state == analysis_pb2.DECISION_STATE_KEEP_RUNNING:
        left = decision.days_remaining
        facts.append(("Time left", f"about {f.days(left)}" if math.isfinite(left) else f.DASH))
    planned = decision.planned_units
    exposed = f.count(decision.exposed_units)
    facts.append(("Units", f"{exposed} of {f.count(planned)} planned" if planned else f"{exposed}"))
    daily = decision.daily_units
    facts.append(("Per day", f.count(round(daily)) if math.isfinite(daily) else f.DASH))
    return tuple(facts)


_STATE_WORDS = ("Keep running", "Unhealthy", "Roll back")


def _headline(badge: Badge, headline: str) -> str:
    """The headline without the state words the badge beside it already says."""
    head, sep, rest = headline.partition(": ")
    if sep and rest and (head == badge.label or head in _STATE_WORDS):
        return rest[:1].upper() + rest[1:]
    return headline


def decision_panel(snapshot: analysis_pb2.ResultSnapshot) -> DecisionPanel:
    """The panel of one snapshot."""
    badge = decision_badge(snapshot)
    if not snapshot.HasField("decision"):
        reasons = tuple(snapshot.recommendation.reasons)
        return DecisionPanel(badge, "", (), (), reasons, False)
    decision = snapshot.decision
    health = tuple(
        HealthLine(CHECK_NAMES.get(i.check, "Data"), i.message) for i in decision.health_issues
    )
    return DecisionPanel(
        badge,
        _headline(badge, decision.headline),
        _facts(decision),
        health,
        tuple(decision.reasons),
        True,
    )
