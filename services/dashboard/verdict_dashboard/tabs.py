"""The experiment page's tabs: what each needs from the services, as template context.

Used by the page itself, by the tab links (htmx fragments) and by the live stream, which
re-renders the open tab when a new snapshot arrives. A call the service does not offer yet
(UNIMPLEMENTED) becomes a "not available" note, never an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard.clients import Api, NotFound, Unimplemented
from verdict_dashboard.views.experiments import progress_of
from verdict_dashboard.views.health import health_view
from verdict_dashboard.views.history import alert_rows, audit_rows, rule_states, snapshot_rows
from verdict_dashboard.views.over_time import over_time_json
from verdict_dashboard.views.results import results_view

TABS = (
    ("results", "Results"),
    ("over-time", "Over time"),
    ("health", "Health"),
    ("history", "Decisions & history"),
    ("export", "Export"),
)
TAB_NAMES = frozenset(t for t, _ in TABS)
OVER_TIME_SNAPSHOTS = 200
NOT_AVAILABLE = "Not available: the analysis service does not offer this yet."


@dataclass(frozen=True)
class TabRequest:
    """Which tab, and its choices (segment "dimension=value", metric key)."""

    tab: str
    segment: str = ""
    metric: str = ""

    @property
    def segment_pair(self) -> tuple[str, str]:
        """(dimension, value); empty for the whole population."""
        dimension, _, value = self.segment.partition("=")
        return (dimension, value) if dimension and value else ("", "")


async def _optional(call: Any) -> Any:
    """The call's result, or None when the service does not offer it."""
    try:
        return await call
    except Unimplemented:
        return None


async def _same(snapshot: analysis_pb2.ResultSnapshot) -> analysis_pb2.ResultSnapshot | None:
    return snapshot


async def _metrics(
    client: Api, experiment: experiment_pb2.Experiment
) -> dict[str, experiment_pb2.Metric]:
    wanted = {m.metric_key for m in experiment.metrics}
    return {m.key: m for m in await client.all_metrics() if m.key in wanted}


async def _latest(
    client: Api, key: str, dimension: str = "", value: str = ""
) -> analysis_pb2.ResultSnapshot | None:
    try:
        return await client.results(key, dimension, value)
    except NotFound:
        return None


async def results_context(
    client: Api,
    experiment: experiment_pb2.Experiment,
    choice: TabRequest,
    latest: analysis_pb2.ResultSnapshot | None = None,
) -> dict[str, Any]:
    dimension, value = choice.segment_pair

    async def snapshot() -> analysis_pb2.ResultSnapshot | None:
        if latest is not None and not dimension:
            return latest
        if experiment.status == experiment_pb2.EXPERIMENT_STATUS_DRAFT:
            return None
        return await _latest(client, experiment.key, dimension, value)

    found, segments, metrics = await asyncio.gather(
        snapshot(), _optional(client.segments(experiment.key)), _metrics(client, experiment)
    )
    view = results_view(found, experiment, metrics) if found is not None else None
    return {
        "results": view,
        "segments": [f"{s.dimension}={s.value}" for s in segments or []],
        "segments_available": segments is not None,
        "segment": choice.segment,
    }


async def over_time_context(
    client: Api, experiment: experiment_pb2.Experiment, choice: TabRequest
) -> dict[str, Any]:
    keys = [m.metric_key for m in experiment.metrics]
    primary = next(
        (m.metric_key for m in experiment.metrics if m.role == experiment_pb2.METRIC_ROLE_PRIMARY),
        keys[0] if keys else "",
    )
    metric = choice.metric if choice.metric in keys else primary
    try:
        page = await client.snapshots(experiment.key, OVER_TIME_SNAPSHOTS)
        snapshots = list(page.snapshots)
    except NotFound:
        snapshots = []
    sequential = experiment.analysis_plan.sequential
    return {
        "metric": metric,
        "metric_keys": keys,
        "snapshot_count": len(snapshots),
        "chart_json": over_time_json(snapshots, metric, sequential) if snapshots else "",
        "sequential": sequential,
    }


async def health_context(
    client: Api,
    experiment: experiment_pb2.Experiment,
    latest: analysis_pb2.ResultSnapshot | None = None,
) -> dict[str, Any]:
    async def timeline() -> analysis_pb2.GetExposureTimelineResponse | None:
        try:
            found: analysis_pb2.GetExposureTimelineResponse | None = await _optional(
                client.exposure_timeline(experiment.key)
            )
        except NotFound:
            return None
        return found

    found, exposures = await asyncio.gather(
        _latest(client, experiment.key) if latest is None else _same(latest), timeline()
    )
    return {
        "health": health_view(found, experiment, exposures),
        "has_snapshot": found is not None,
        "timeline_note": NOT_AVAILABLE if exposures is None else "",
    }


async def history_context(client: Api, experiment: experiment_pb2.Experiment) -> dict[str, Any]:
    async def snapshots() -> list[analysis_pb2.ResultSnapshot]:
        try:
            return list((await client.snapshots(experiment.key, 20)).snapshots)
        except NotFound:
            return []

    audit, alerts, recent = await asyncio.gather(
        client.audit_events(experiment.key, page_size=100),
        _optional(client.alerts(experiment.key)),
        snapshots(),
    )
    latest = recent[0] if recent else None
    progress = progress_of(experiment, latest)
    audit_view = audit_rows(audit.audit_events)
    return {
        "rules": rule_states(experiment, progress.exposed if progress else 0),
        "stops": [r for r in audit_view if r.is_stop],
        "audit": audit_view,
        "alerts": alert_rows(alerts.alerts) if alerts is not None else None,
        "alerts_note": NOT_AVAILABLE if alerts is None else "",
        "snapshots": snapshot_rows(recent),
    }


async def tab_context(
    client: Api,
    experiment: experiment_pb2.Experiment,
    choice: TabRequest,
    latest: analysis_pb2.ResultSnapshot | None = None,
) -> dict[str, Any]:
    """The context of the tab's template (`partials/tab_<tab>.html`)."""
    context: dict[str, Any] = {
        "tab": choice.tab,
        "experiment": experiment,
        "choice": choice,
        "now": datetime.now(UTC),
    }
    if choice.tab == "results":
        context.update(await results_context(client, experiment, choice, latest))
    elif choice.tab == "over-time":
        context.update(await over_time_context(client, experiment, choice))
    elif choice.tab == "health":
        context.update(await health_context(client, experiment, latest))
    elif choice.tab == "history":
        context.update(await history_context(client, experiment))
    return context
