"""The Decisions & history tab: stopping rules and their state, stops, alerts, snapshots, the
audit log (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import json_format

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard import formatting as f

RULE_NAMES = {
    experiment_pb2.STOPPING_RULE_SRM: "Sample-ratio mismatch",
    experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM: "Guardrail harm",
    experiment_pb2.STOPPING_RULE_EFFICACY: "Efficacy",
    experiment_pb2.STOPPING_RULE_TARGET_SAMPLE_SIZE: "Target sample size",
    experiment_pb2.STOPPING_RULE_MAX_DURATION: "Maximum duration",
}
_MODES = {
    experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE: "overridden",
    experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE: "snoozed",
    experiment_pb2.RULE_OVERRIDE_MODE_DISABLE: "disabled",
}
_SRM_ACTIONS = {
    experiment_pb2.SRM_ACTION_IGNORE: "report only",
    experiment_pb2.SRM_ACTION_ALERT: "alert",
    experiment_pb2.SRM_ACTION_STOP: "stop and alert",
    experiment_pb2.SRM_ACTION_UNSPECIFIED: "alert",
}


def _dt(holder: object, name: str) -> datetime | None:
    if not holder.HasField(name):  # type: ignore[attr-defined]
        return None
    value: datetime = getattr(holder, name).ToDatetime(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class RuleState:
    """One stopping rule: how it is set and where it stands."""

    name: str
    setting: str
    state: str
    kind: str
    """Colour: fired, quiet, off, active."""


def rule_states(experiment: experiment_pb2.Experiment, exposed_units: int) -> tuple[RuleState, ...]:
    """Every stopping rule of the experiment, with operators' overrides and the rule that fired."""
    rules = experiment.stopping_rules
    overrides = {o.rule: o for o in experiment.rule_overrides}
    fired = experiment.decision.rule if experiment.HasField("decision") else 0
    threshold = rules.srm_p_value_threshold or 0.001
    rows = [
        (
            experiment_pb2.STOPPING_RULE_SRM,
            f"{_SRM_ACTIONS.get(rules.srm_action, 'alert')}, p < {threshold:g}",
            rules.srm_action != experiment_pb2.SRM_ACTION_IGNORE,
        ),
        (
            experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM,
            "on" if rules.guardrail_harm else "off",
            rules.guardrail_harm,
        ),
        (
            experiment_pb2.STOPPING_RULE_EFFICACY,
            f"on, after {f.count(rules.min_units_per_variant)} units per variant"
            if rules.efficacy
            else "off",
            rules.efficacy,
        ),
        (
            experiment_pb2.STOPPING_RULE_TARGET_SAMPLE_SIZE,
            f"{f.count(rules.target_sample_size)} units ({f.count(exposed_units)} so far)"
            if rules.target_sample_size
            else "off",
            rules.target_sample_size > 0,
        ),
        (
            experiment_pb2.STOPPING_RULE_MAX_DURATION,
            f.days(rules.max_duration.ToTimedelta().total_seconds() / 86400)
            if rules.HasField("max_duration")
            else "off",
            rules.HasField("max_duration"),
        ),
    ]
    states = []
    for rule, setting, enabled in rows:
        override = overrides.get(rule)
        if fired == rule:
            state, kind = "fired: stopped the experiment", "fired"
        elif override is not None:
            until = f" until {f.when(_dt(override, 'until'))}" if override.HasField("until") else ""
            who = f" by {override.actor}" if override.actor else ""
            state, kind = f"{_MODES.get(override.mode, 'overridden')}{who}{until}", "quiet"
        elif enabled:
            state, kind = "watching", "active"
        else:
            state, kind = "not used", "off"
        states.append(RuleState(RULE_NAMES[rule], setting, state, kind))
    return tuple(states)


@dataclass(frozen=True)
class AuditRow:
    """One audit log entry."""

    when: str
    action: str
    actor: str
    rule: str
    reason: str
    changes: str
    is_stop: bool


def _changes_text(event: experiment_pb2.AuditEvent) -> str:
    if event.action.endswith(".created"):
        return ""  # the whole resource: the pages show it, the log need not repeat it
    changes = json_format.MessageToDict(event.changes)
    parts = []
    for path, change in sorted(changes.items()):
        if path == "details":
            parts.append("figures: " + json.dumps(change, sort_keys=True))
        elif isinstance(change, dict) and "after" in change:
            parts.append(f"{path}: {_short(change.get('before'))} → {_short(change.get('after'))}")
    return "; ".join(parts)


def _short(value: object) -> str:
    text = "∅" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "…"


def audit_rows(events: Sequence[experiment_pb2.AuditEvent]) -> tuple[AuditRow, ...]:
    """The audit log, newest first."""
    return tuple(
        AuditRow(
            when=f.when(_dt(e, "time")),
            action=e.action,
            actor=e.actor,
            rule=RULE_NAMES.get(e.rule, ""),
            reason=e.reason,
            changes=_changes_text(e),
            is_stop=e.action == "experiment.stopped",
        )
        for e in events
    )


@dataclass(frozen=True)
class AlertRow:
    """One alert raised by a stopping rule."""

    when: str
    rule: str
    action: str
    reason: str
    delivery: str


def alert_rows(alerts: Sequence[analysis_pb2.Alert]) -> tuple[AlertRow, ...]:
    """Alerts, newest first, with their delivery state."""
    rows = []
    for a in alerts:
        if a.delivered:
            delivery = f"delivered {f.when(_dt(a, 'delivery_time'))}"
        elif a.last_error:
            delivery = f"not delivered after {a.attempts} attempts: {a.last_error}"
        else:
            delivery = "not delivered (no webhook, or retrying)"
        rows.append(
            AlertRow(
                f.when(_dt(a, "create_time")),
                RULE_NAMES.get(a.rule, "—"),
                a.action,
                a.reason,
                delivery,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class SnapshotRow:
    """One stored analysis in the snapshots list."""

    id: int
    when: str
    units: str
    srm_p: str
    recommendation: str


_RECOMMENDATIONS = {1: "keep running", 2: "ship", 3: "roll back", 4: "inconclusive"}


def snapshot_rows(snapshots: Sequence[analysis_pb2.ResultSnapshot]) -> tuple[SnapshotRow, ...]:
    """Snapshots newest first."""
    return tuple(
        SnapshotRow(
            id=s.id,
            when=f.when(_dt(s, "create_time")),
            units=f.count(sum(s.units.values())),
            srm_p=f.p_value(s.srm.p_value),
            recommendation=_RECOMMENDATIONS.get(s.recommendation.decision, "—"),
        )
        for s in snapshots
    )
