"""The Health tab: sample-ratio mismatch, observed against planned split, exposures over time,
units seen in several variants, per-metric diagnostics (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard import formatting as f


@dataclass(frozen=True)
class SplitRow:
    """One variant's observed share against its planned one."""

    variant: str
    units: str
    observed: str
    planned: str
    off: bool
    """True when the observed share is more than a point away from the plan."""


@dataclass(frozen=True)
class DiagnosticRow:
    """What the analysis left out or changed for one metric."""

    metric: str
    before_exposure: str
    unexposed: str
    capped: str


@dataclass(frozen=True)
class HealthView:
    """Everything the Health tab shows."""

    srm_mismatch: bool
    srm_p: str
    srm_sequential_p: str
    split: tuple[SplitRow, ...]
    excluded_units: str
    issues: tuple[str, ...]
    diagnostics: tuple[DiagnosticRow, ...]
    diagnostics_available: bool
    timeline_json: str
    """The exposures chart's data; empty when the timeline is not available."""


def split_rows(
    snapshot: analysis_pb2.ResultSnapshot, experiment: experiment_pb2.Experiment
) -> tuple[SplitRow, ...]:
    """Observed share of exposed units per variant against the weights; a share more than a
    point off is marked only when the SRM check fails (otherwise it is chance)."""
    total = sum(snapshot.units.values())
    rows = []
    for variant in experiment.variants:
        units = snapshot.units.get(variant.key, 0)
        share = units / total if total else float("nan")
        rows.append(
            SplitRow(
                variant.key,
                f.count(units),
                f.percent(share),
                f.percent(variant.weight),
                snapshot.srm.mismatch and abs(share - variant.weight) > 0.01,
            )
        )
    return tuple(rows)


def timeline_json(timeline: analysis_pb2.GetExposureTimelineResponse) -> str:
    """Cumulative units per variant per day, and the planned cumulative split."""
    variants = sorted(timeline.planned_shares) or sorted(
        {k for day in timeline.days for k in day.units}
    )
    days = [d.day.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d") for d in timeline.days]
    cumulative: dict[str, list[int]] = {v: [] for v in variants}
    running = dict.fromkeys(variants, 0)
    totals = []
    for day in timeline.days:
        for v in variants:
            running[v] += day.units.get(v, 0)
            cumulative[v].append(running[v])
        totals.append(sum(running.values()))
    planned = {
        v: [round(t * timeline.planned_shares.get(v, 0.0), 1) for t in totals] for v in variants
    }
    return f.json_for_html(
        {"kind": "exposures", "days": days, "observed": cumulative, "planned": planned}
    )


def health_view(
    snapshot: analysis_pb2.ResultSnapshot | None,
    experiment: experiment_pb2.Experiment,
    timeline: analysis_pb2.GetExposureTimelineResponse | None,
) -> HealthView:
    """The Health tab; `timeline` is None when the service does not offer it."""
    diagnostics = snapshot.diagnostics if snapshot is not None else analysis_pb2.Diagnostics()
    available = snapshot is not None and snapshot.HasField("diagnostics")
    issues = tuple(i.message for i in snapshot.decision.health_issues) if snapshot else ()
    excluded = 0
    if snapshot is not None:
        excluded = snapshot.excluded_units or diagnostics.multiple_exposure_units
    if timeline is not None:
        excluded = max(excluded, timeline.multiple_exposure_units)
    return HealthView(
        srm_mismatch=bool(snapshot and snapshot.srm.mismatch),
        srm_p=f.p_value(snapshot.srm.p_value) if snapshot else f.DASH,
        srm_sequential_p=f.p_value(snapshot.srm.sequential_p_value) if snapshot else f.DASH,
        split=split_rows(snapshot, experiment) if snapshot else (),
        excluded_units=f.count(excluded),
        issues=issues,
        diagnostics=tuple(
            DiagnosticRow(
                m.metric_key,
                f.count(m.events_before_exposure),
                f.count(m.events_from_unexposed_units),
                f.count(m.capped_units),
            )
            for m in diagnostics.metrics
        ),
        diagnostics_available=available,
        timeline_json=timeline_json(timeline) if timeline is not None and timeline.days else "",
    )
