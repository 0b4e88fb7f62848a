"""Alerts as values (pure): what a fired rule raises, how it is deduplicated, what is posted.

An alert is stored once per `dedup_key`:

- a stop (or a failed stop) by rule R in the run that started at T: `<key>/<T>/<R>/<action>`,
  so retried analyses of the same run never raise it twice;
- an alert-only rule (e.g. SRM set to alert) raises one alert per *episode*: from the analysis
  where it starts firing until the first where it no longer fires (the store keeps the open
  episodes), whatever the number of analyses, restarts or replicas in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DeliveryFailed", "NewAlert", "StoredAlert", "alert_document", "json_safe"]


@dataclass(frozen=True)
class NewAlert:
    """An alert to raise."""

    experiment_key: str
    rule: str
    """The stopping rule's name (`stopping_rules.RuleName` value)."""
    action: str
    """"stopped", "alert", "stop_failed" or "not_running"."""
    decision: str
    """The decision the rule recommends (`stopping_rules.Decision` value)."""
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)
    snapshot_id: int = 0
    dedup_key: str = ""
    """Unique per alert that must not be raised twice; empty for alert-only rules (the store
    derives it from the episode)."""


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored, with its delivery state."""

    id: int
    alert: NewAlert
    created_at: datetime
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None
    trace_context: str = ""
    """W3C `traceparent` of the analysis run that raised it ("" when not sampled)."""


class DeliveryFailed(Exception):
    """One delivery attempt failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def stop_dedup_key(experiment_key: str, run_started: str, rule: str, action: str) -> str:
    """The key of a stop alert: one per experiment, run, rule and outcome."""
    return f"{experiment_key}/{run_started}/{rule}/{action}"


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def alert_document(stored: StoredAlert) -> dict[str, Any]:
    """The JSON document posted to the webhook. `id` is stable: a receiver that sees an id twice
    (a delivery retried after a lost acknowledgement) can drop the repeat."""
    a = stored.alert
    document: dict[str, Any] = json_safe(
        {
            "id": stored.id,
            "experiment_key": a.experiment_key,
            "rule": a.rule,
            "action": a.action,
            "decision": a.decision,
            "reason": a.reason,
            "details": dict(a.details),
            "snapshot_id": a.snapshot_id,
            "time": stored.created_at.isoformat(),
            "summary": f"{a.experiment_key}: {a.rule} ({a.action}): {a.reason}",
        }
    )
    return document
