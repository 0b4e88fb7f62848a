"""The Results tab: one row per metric × variant, the forest plot's data, the notes (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.views.badges import Badge, decision_badge
from verdict_dashboard.views.decision import DecisionPanel, decision_panel
from verdict_dashboard.views.effects import (
    Basis,
    Effect,
    correction_name,
    decision_basis,
    scale_effect,
    verdict_of,
)

QUIET_REASONS = frozenset({"NOT_SEQUENTIAL", "NOT_DECISION_SCALE", "NOT_DEFINED_FOR_METRIC_TYPE"})
"""Missing figures that are not news: anytime-valid pairs of a fixed-horizon plan, the other
scale's adjusted interval, Cohen's d of a ratio."""
WARNING_TEXT = {
    "SMALL_SAMPLE": "small sample: read the interval as indicative",
    "OUTSIDE_NATURAL_RANGE": "the interval leaves the rate's natural range: too few units",
}

ROLE_LABELS = {
    experiment_pb2.METRIC_ROLE_PRIMARY: "primary",
    experiment_pb2.METRIC_ROLE_SECONDARY: "secondary",
    experiment_pb2.METRIC_ROLE_GUARDRAIL: "guardrail",
}


@dataclass(frozen=True)
class ResultRow:
    """One metric × treatment variant against control."""

    metric_key: str
    metric_name: str
    role: str
    variant_key: str
    control_mean: str
    control_units: str
    variant_mean: str
    variant_units: str
    relative: Effect
    absolute: Effect
    chance: str
    """Chance to beat control, or a dash."""
    chance_fixed_horizon: bool
    """The chance is fixed-horizon beside anytime-valid figures: labelled so."""
    verdict: str
    verdict_label: str
    basis: Basis
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    """A group of rows with its own forest plot (decision metrics, guardrails)."""

    id: str
    title: str
    rows: tuple[ResultRow, ...]
    chart_json: str


@dataclass(frozen=True)
class ResultsView:
    """Everything the Results tab shows for one snapshot."""

    snapshot_id: int
    created: datetime | None
    created_iso: str
    badge: Badge
    decision: DecisionPanel
    sections: tuple[Section, ...]
    correction: str
    sequential: bool
    alpha: float
    srm_mismatch: bool
    srm_p: str
    units: tuple[tuple[str, str], ...]
    excluded_units: str
    segment: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def _mean_text(summary: analysis_pb2.VariantSummary | None, metric_type: int) -> tuple[str, str]:
    if summary is None:
        return f.DASH, f.DASH
    if metric_type == experiment_pb2.METRIC_TYPE_BINOMIAL:
        mean = f.percent(summary.mean)
    else:
        mean = f.number(summary.mean)
    return mean, f.count(summary.units)


def _rows(
    result: analysis_pb2.MetricResult, metric: experiment_pb2.Metric | None, sequential: bool
) -> list[ResultRow]:
    by_variant = {v.variant_key: v for v in result.variants}
    control = result.variants[0] if result.variants else None
    direction = metric.direction if metric is not None else experiment_pb2.DIRECTION_INCREASE
    rows = []
    for comparison in result.comparisons:
        relative = scale_effect(comparison, relative=True, sequential=sequential)
        absolute = scale_effect(comparison, relative=False, sequential=sequential)
        kind, label = verdict_of(comparison, direction, relative)
        c_mean, c_units = _mean_text(control, result.type)
        v_mean, v_units = _mean_text(by_variant.get(comparison.variant_key), result.type)
        notes = _notes(comparison)
        chance = comparison.chance_to_beat_control
        rows.append(
            ResultRow(
                metric_key=result.metric_key,
                metric_name=(
                    metric.name if metric is not None and metric.name else result.metric_key
                ),
                role=ROLE_LABELS.get(result.role, "secondary"),
                variant_key=comparison.variant_key,
                control_mean=c_mean,
                control_units=c_units,
                variant_mean=v_mean,
                variant_units=v_units,
                relative=relative,
                absolute=absolute,
                chance=f.percent(chance, 0) if math.isfinite(chance) else f.DASH,
                chance_fixed_horizon=sequential
                and (
                    comparison.chance_to_beat_control_fixed_horizon
                    or not comparison.HasField("decision_basis")
                ),
                verdict=kind,
                verdict_label=label,
                basis=decision_basis(comparison),
                notes=tuple(notes),
            )
        )
    return rows


def _notes(comparison: analysis_pb2.Comparison) -> list[str]:
    """Why figures are missing (leaving out the expected absences) and the warnings."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(comparison.missing_reasons.items()):
        if reason not in QUIET_REASONS and "." not in key:
            by_reason.setdefault(reason, []).append(key)
    notes = []
    for reason, keys in by_reason.items():
        if {"absolute", "relative"} & set(keys):
            what = "effects"
        elif "decision_basis" in keys:
            what = "decision"
        else:
            what = ", ".join(k.replace("_", " ") for k in keys)
        notes.append(f"{what}: {reason.replace('_', ' ').lower()}")
    if comparison.degenerate_reason and not comparison.missing_reasons:
        notes.append(comparison.degenerate_reason.replace("_", " ").lower())
    notes += [WARNING_TEXT.get(w, w.replace("_", " ").lower()) for w in comparison.warnings]
    return notes


def _bound(x: float) -> float | None:
    return x if math.isfinite(x) else None


def forest_json(rows: tuple[ResultRow, ...]) -> str:
    """The forest plot's data: per row its label, verdict and both scales' [lower, est, upper]."""
    data = [
        {
            "label": f"{r.metric_name} · {r.variant_key}",
            "verdict": r.verdict,
            "relative": [
                _bound(r.relative.lower),
                _bound(r.relative.estimate),
                _bound(r.relative.upper),
            ],
            "absolute": [
                _bound(r.absolute.lower),
                _bound(r.absolute.estimate),
                _bound(r.absolute.upper),
            ],
            "anytime": r.relative.anytime,
        }
        for r in rows
    ]
    return f.json_for_html({"kind": "forest", "rows": data})


def results_view(
    snapshot: analysis_pb2.ResultSnapshot,
    experiment: experiment_pb2.Experiment,
    metrics: Mapping[str, experiment_pb2.Metric],
) -> ResultsView:
    """The Results tab for `snapshot` of `experiment` (catalog `metrics` name and orient rows)."""
    plan = experiment.analysis_plan
    # A snapshot that states its plan (alpha set) is read as analysed, whatever the plan says
    # now; older snapshots fall back to the experiment's plan.
    stated = snapshot.alpha > 0
    sequential = snapshot.sequential if stated else plan.sequential
    decision_rows: list[ResultRow] = []
    guardrail_rows: list[ResultRow] = []
    order = {experiment_pb2.METRIC_ROLE_PRIMARY: 0, experiment_pb2.METRIC_ROLE_SECONDARY: 1}
    for result in sorted(snapshot.metrics, key=lambda r: order.get(r.role, 2)):
        rows = _rows(result, metrics.get(result.metric_key), sequential)
        (
            guardrail_rows if result.role == experiment_pb2.METRIC_ROLE_GUARDRAIL else decision_rows
        ).extend(rows)
    sections = []
    for sid, title, rows in (
        ("decision", "Primary and secondary metrics", decision_rows),
        ("guardrails", "Guardrails", guardrail_rows),
    ):
        if rows:
            frozen = tuple(rows)
            drawable = any(math.isfinite(r.relative.estimate) for r in frozen)
            sections.append(Section(sid, title, frozen, forest_json(frozen) if drawable else ""))
    created = (
        snapshot.create_time.ToDatetime(tzinfo=UTC) if snapshot.HasField("create_time") else None
    )
    correction = snapshot.correction if stated else plan.correction
    alpha = snapshot.alpha if stated else plan.alpha or 0.05
    notes = []
    if any(not r.basis.available for r in (*decision_rows, *guardrail_rows)):
        notes.append(
            "Which interval each verdict is decided on is not available from this analysis yet."
        )
    segment = (
        f"{snapshot.segment.dimension} = {snapshot.segment.value}"
        if snapshot.HasField("segment")
        else ""
    )
    return ResultsView(
        snapshot_id=snapshot.id,
        created=created,
        created_iso=created.isoformat() if created else "",
        badge=decision_badge(snapshot),
        decision=decision_panel(snapshot),
        sections=tuple(sections),
        correction=correction_name(correction),
        sequential=sequential,
        alpha=alpha,
        srm_mismatch=snapshot.srm.mismatch,
        srm_p=f.p_value(snapshot.srm.sequential_p_value if sequential else snapshot.srm.p_value),
        units=tuple((k, f.count(v)) for k, v in _variant_order(snapshot, experiment)),
        excluded_units=f.count(snapshot.excluded_units),
        segment=segment,
        notes=tuple(notes),
    )


def _variant_order(
    snapshot: analysis_pb2.ResultSnapshot, experiment: experiment_pb2.Experiment
) -> list[tuple[str, int]]:
    keys = [v.key for v in experiment.variants]
    keys += sorted(k for k in snapshot.units if k not in keys)
    return [(k, snapshot.units.get(k, 0)) for k in keys]
