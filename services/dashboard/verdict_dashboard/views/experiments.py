"""The experiments list's rows and the experiment page's header (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.views.badges import Badge, status_badge
from verdict_dashboard.views.effects import scale_effect

STATUS = {
    experiment_pb2.EXPERIMENT_STATUS_DRAFT: "draft",
    experiment_pb2.EXPERIMENT_STATUS_RUNNING: "running",
    experiment_pb2.EXPERIMENT_STATUS_STOPPED: "stopped",
    experiment_pb2.EXPERIMENT_STATUS_ARCHIVED: "archived",
}
STATUS_FILTERS = (
    ("", "All but archived", experiment_pb2.EXPERIMENT_STATUS_UNSPECIFIED),
    ("draft", "Draft", experiment_pb2.EXPERIMENT_STATUS_DRAFT),
    ("running", "Running", experiment_pb2.EXPERIMENT_STATUS_RUNNING),
    ("stopped", "Stopped", experiment_pb2.EXPERIMENT_STATUS_STOPPED),
    ("archived", "Archived", experiment_pb2.EXPERIMENT_STATUS_ARCHIVED),
)


def _time(ts_holder: experiment_pb2.Experiment, name: str) -> datetime | None:
    if not ts_holder.HasField(name):  # type: ignore[arg-type]
        return None
    value: datetime = getattr(ts_holder, name).ToDatetime(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class Progress:
    """Exposed units against the planned sample."""

    exposed: int
    planned: int
    text: str

    @property
    def fraction(self) -> float:
        """Share of the plan reached, capped at 1 (0 without a plan)."""
        return min(1.0, self.exposed / self.planned) if self.planned > 0 else 0.0


@dataclass(frozen=True)
class PrimaryEffect:
    """The primary metric's effect of one treatment, in one line."""

    metric: str
    variant: str
    text: str
    interval: str
    verdict: str


@dataclass(frozen=True)
class ExperimentRow:
    """One row of the experiments list."""

    key: str
    name: str
    status: str
    days_running: str
    progress: Progress | None
    primary: tuple[PrimaryEffect, ...]
    badge: Badge


def progress_of(
    experiment: experiment_pb2.Experiment, snapshot: analysis_pb2.ResultSnapshot | None
) -> Progress | None:
    """Units exposed so far against the plan (the decision's, else the target sample size)."""
    if snapshot is None:
        return None
    planned = snapshot.decision.planned_units or experiment.stopping_rules.target_sample_size
    exposed = snapshot.decision.exposed_units or sum(snapshot.units.values())
    if planned <= 0:
        return Progress(exposed, 0, f"{f.count(exposed)} units · no planned sample")
    return Progress(exposed, planned, f"{f.count(exposed)} of {f.count(planned)} units")


def primary_effects(
    snapshot: analysis_pb2.ResultSnapshot | None, sequential: bool
) -> tuple[PrimaryEffect, ...]:
    """Each treatment's effect on the primary metric."""
    if snapshot is None:
        return ()
    for result in snapshot.metrics:
        if result.role == experiment_pb2.METRIC_ROLE_PRIMARY:
            effects = []
            for comparison in result.comparisons:
                effect = scale_effect(comparison, relative=True, sequential=sequential)
                verdict = {
                    analysis_pb2.METRIC_VERDICT_WIN: "win",
                    analysis_pb2.METRIC_VERDICT_LOSS: "loss",
                }.get(
                    comparison.verdict,
                    "win"
                    if comparison.significant and effect.estimate > 0
                    else "loss"
                    if comparison.significant
                    else "inconclusive",
                )
                effects.append(
                    PrimaryEffect(
                        result.metric_key,
                        comparison.variant_key,
                        effect.text,
                        effect.interval_text,
                        verdict,
                    )
                )
            return tuple(effects)
    return ()


def experiment_row(
    experiment: experiment_pb2.Experiment,
    snapshot: analysis_pb2.ResultSnapshot | None,
    now: datetime,
) -> ExperimentRow:
    """A list row for `experiment` with its latest snapshot (None when there is none)."""
    running = experiment.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
    started = _time(experiment, "start_time")
    return ExperimentRow(
        key=experiment.key,
        name=experiment.name or experiment.key,
        status=STATUS.get(experiment.status, "unknown"),
        days_running=f.days(f.days_between(started, now)) if running and started else f.DASH,
        progress=progress_of(experiment, snapshot),
        primary=primary_effects(snapshot, experiment.analysis_plan.sequential),
        badge=status_badge(experiment, snapshot),
    )


@dataclass(frozen=True)
class Header:
    """The experiment page's header and which actions its user may take."""

    key: str
    name: str
    status: str
    description: str
    hypothesis: str
    started: str
    days_running: str
    allocation: tuple[tuple[str, str, bool], ...]
    """(variant key, share, is control)."""
    coverage: str
    plan: str
    badge: Badge
    can_start: bool
    can_restart: bool
    can_stop: bool
    variants: tuple[str, ...]
    stop_text: str


def header(
    experiment: experiment_pb2.Experiment,
    snapshot: analysis_pb2.ResultSnapshot | None,
    admin: bool,
    now: datetime,
) -> Header:
    """The header of the experiment page."""
    plan = experiment.analysis_plan
    started = _time(experiment, "start_time")
    status = experiment.status
    parts = [
        f"α {plan.alpha or 0.05:g}",
        f"power {plan.power or 0.8:g}",
        "sequential" if plan.sequential else "fixed horizon",
    ]
    if plan.minimum_detectable_effect:
        parts.append(f"MDE {f.percent(plan.minimum_detectable_effect)}")
    stop = experiment.decision
    stop_text = ""
    if (
        status
        in (experiment_pb2.EXPERIMENT_STATUS_STOPPED, experiment_pb2.EXPERIMENT_STATUS_ARCHIVED)
        and stop.reason
    ):
        who = stop.stopped_by or "someone"
        stop_text = f"Stopped by {who} on {f.when(_time_of(stop))}: {stop.reason}"
    return Header(
        key=experiment.key,
        name=experiment.name or experiment.key,
        status=STATUS.get(status, "unknown"),
        description=experiment.description,
        hypothesis=experiment.hypothesis,
        started=f.when(started) if started else "not started",
        days_running=(
            f.days(f.days_between(started, now))
            if started and status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
            else f.DASH
        ),
        allocation=tuple(
            (v.key, f.percent(v.weight, 0), v.is_control) for v in experiment.variants
        ),
        coverage=f.percent(experiment.coverage, 0),
        plan=" · ".join(parts),
        badge=status_badge(experiment, snapshot),
        can_start=admin and status == experiment_pb2.EXPERIMENT_STATUS_DRAFT,
        can_restart=admin and status == experiment_pb2.EXPERIMENT_STATUS_STOPPED,
        can_stop=admin and status == experiment_pb2.EXPERIMENT_STATUS_RUNNING,
        variants=tuple(v.key for v in experiment.variants),
        stop_text=stop_text,
    )


def _time_of(stop: experiment_pb2.StopDecision) -> datetime | None:
    return stop.stop_time.ToDatetime(tzinfo=UTC) if stop.HasField("stop_time") else None
