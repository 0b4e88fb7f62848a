"""The analysis use case: lock, collect, analyse, store, publish, then apply the stopping rules.

One run of one experiment holds its advisory lock throughout, so two replicas never analyse (or
stop) the same experiment at once. Stopping rules act only on RUNNING experiments; a stopped
experiment can still be analysed (its final results), with no action taken. Each snapshot
carries the experiment's decision state (`decision_state`), worked out on the whole population;
a segment's snapshot carries the same one.

A run is an `analysis.run` span (in the caller's trace: RunAnalysis's, or the scheduler's new
one), so the StopExperiment it calls and the alert it raises (delivered later under the same
trace) are one trace; its duration and the rules that fired are counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from opentelemetry import trace

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_analysis import plan_mapping, rule_overrides, stats
from verdict_analysis.alerts import NewAlert, stop_dedup_key
from verdict_analysis.decision_state import DecisionSummary, Situation, decide
from verdict_analysis.metrics import MetricSpec, Segment, SpecError, metric_spec_from_proto
from verdict_analysis.planned_sample import planned_sample
from verdict_analysis.ports import (
    AlertLog,
    Catalog,
    Clock,
    Locks,
    ResultsPublisher,
    SnapshotRepository,
    StatsReader,
    Stopper,
)
from verdict_analysis.snapshot_proto import DECISIONS, Observed, build_snapshot
from verdict_analysis.stopping_rules import (
    Evaluation,
    FiredRule,
    MetricRole,
    RuleName,
    Rules,
    SrmPolicy,
    evaluate,
)
from verdict_platform.errors import Aborted, FailedPrecondition, NotFound, Unavailable
from verdict_platform.telemetry.catalog import ANALYSIS_DURATION, STOPPING_RULE_FIRINGS

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("verdict.analysis")

_NO_RULES = Rules(srm=SrmPolicy.IGNORE)


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def _specs(
    experiment: experiment_pb2.Experiment, definitions: Mapping[str, experiment_pb2.Metric]
) -> list[MetricSpec]:
    specs = []
    for used in experiment.metrics:
        definition = definitions.get(used.metric_key)
        if definition is None:
            log.warning("metric %s of %s is not in the catalog", used.metric_key, experiment.key)
            continue
        try:
            spec = metric_spec_from_proto(definition)
            spec.validate()
        except SpecError as error:
            log.warning("metric %s skipped: %s", used.metric_key, error)
            continue
        specs.append(spec)
    return specs


class Analyzer:
    """Analyses one experiment at a time per lock; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        locks: Locks,
        snapshots: SnapshotRepository,
        publisher: ResultsPublisher,
        stopper: Stopper,
        alerts: AlertLog,
        clock: Clock = utc_now,
        alert_raised: Callable[[], None] = lambda: None,
    ) -> None:
        self._catalog = catalog
        self._locks = locks
        self._snapshots = snapshots
        self._publisher = publisher
        self._stopper = stopper
        self._alerts = alerts
        self._clock = clock
        self._alert_raised = alert_raised

    async def run(
        self, experiment_key: str, *, fresher_than_s: float | None = None
    ) -> analysis_pb2.ResultSnapshot | None:
        """Analyses now and returns the stored snapshot.

        With `fresher_than_s`, returns None without analysing when a snapshot younger than that
        exists (another replica just did it): the scheduler's way of sharing the work.
        Raises NotFound, FailedPrecondition (draft), Aborted (locked elsewhere), Unavailable.
        """
        started = time.perf_counter()
        outcome: str | None = "error"
        attributes = {"verdict.experiment_key": experiment_key}
        with _tracer.start_as_current_span("analysis.run", attributes=attributes) as span:
            try:
                stored = await self._run(experiment_key, fresher_than_s)
                outcome = "ok" if stored is not None else None
                span.set_attribute("verdict.analysed", stored is not None)
                return stored
            except Aborted:
                outcome = None  # another replica holds it: no analysis here
                raise
            finally:
                if outcome is not None:  # one series per experiment and outcome: ok or error
                    elapsed = time.perf_counter() - started
                    ANALYSIS_DURATION.record(elapsed, experiment_key, outcome)

    async def _run(
        self, experiment_key: str, fresher_than_s: float | None
    ) -> analysis_pb2.ResultSnapshot | None:
        experiment = await self._catalog.experiment(experiment_key)
        if experiment is None:
            raise NotFound(f"experiment {experiment_key!r} not found")
        if experiment.status == experiment_pb2.EXPERIMENT_STATUS_DRAFT:
            raise FailedPrecondition(f"experiment {experiment_key!r} is a draft; start it first")
        async with self._locks.hold(experiment_key) as reader:
            # Read again under the lock: another replica may have stopped it meanwhile, and a
            # second StopExperiment on a stopped experiment would override its decision.
            experiment = await self._catalog.experiment(experiment_key) or experiment
            if fresher_than_s is not None:
                last = await self._snapshots.latest_time(experiment_key)
                if last is not None and (self._clock() - last).total_seconds() < fresher_than_s:
                    return None
            definitions = await self._catalog.metrics([m.metric_key for m in experiment.metrics])
            snapshot, evaluation, decision = await self._analyse(
                experiment, definitions, reader, None, None
            )
            stored = await self._snapshots.add(snapshot)
            await self._publisher.published(experiment_key)
            if experiment.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING:
                await self._act(experiment, evaluation, stored)
            for dimension in experiment.analysis_plan.segments:
                for value in await reader.segment_values(experiment_key, dimension):
                    segment = Segment(dimension, value)
                    part, _, _ = await self._analyse(
                        experiment, definitions, reader, segment, decision
                    )
                    await self._snapshots.add(part)
            return stored

    async def _analyse(
        self,
        experiment: experiment_pb2.Experiment,
        definitions: Mapping[str, experiment_pb2.Metric],
        reader: StatsReader,
        segment: Segment | None,
        decision: DecisionSummary | None,
    ) -> tuple[analysis_pb2.ResultSnapshot, Evaluation, DecisionSummary | None]:
        """One snapshot; without a `decision` (the whole population), works it out."""
        started = time.perf_counter()
        plan = plan_mapping.analysis_plan(experiment)
        order = plan_mapping.variant_keys(experiment)
        collected = await reader.collect(
            experiment.key,
            order,
            plan_mapping.control_key(experiment),
            _specs(experiment, definitions),
            cuped_lookback_s=plan_mapping.cuped_lookback_s(experiment),
            segment=segment,
            quantile_alpha=plan.alpha,
        )
        if plan.variant_weights is not None:
            plan = replace(plan, variant_weights={k: plan.variant_weights[k] for k in order})
        counts = {k: collected.units[k] for k in order}
        context = plan_mapping.metric_context(experiment, definitions)
        inputs = plan_mapping.with_margins(collected.metrics, context)
        analysis = stats.analyze_experiment(inputs, plan, assignment_counts=counts)
        running = experiment.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
        # Segments inform; only the whole population may stop an experiment.
        rules = (
            plan_mapping.stopping_rules(experiment) if running and segment is None else _NO_RULES
        )
        started_at = (
            experiment.start_time.ToDatetime(tzinfo=UTC)
            if experiment.HasField("start_time")
            else None
        )
        now = self._clock()
        suppress = None
        overrides = plan_mapping.rule_overrides(experiment) if rules is not _NO_RULES else []
        if overrides:
            strict_fired: set[RuleName] = set()
            if rule_overrides.needs_strict_analysis(overrides):
                strict_plan = replace(
                    plan,
                    alpha=plan.alpha * rule_overrides.STRICTER,
                    srm_alpha=plan.srm_alpha * rule_overrides.STRICTER,
                )
                strict = stats.analyze_experiment(inputs, strict_plan, assignment_counts=counts)
                strict_eval = evaluate(
                    strict, context, collected.units, rules, started_at=started_at, now=now
                )
                strict_fired = {f.rule for f in strict_eval.fired}
            suppress = rule_overrides.suppressor(
                overrides,
                strict_fired=strict_fired,
                units=sum(collected.units.values()),
                ran=now - started_at if started_at is not None else None,
                now=now,
            )
        evaluation = evaluate(
            analysis,
            context,
            collected.units,
            rules,
            started_at=started_at,
            now=now,
            suppress=suppress,
        )
        if decision is None:
            primary = next(
                (
                    m
                    for m in inputs
                    if (c := context.get(m.key)) is not None and c.role is MetricRole.PRIMARY
                ),
                None,
            )
            situation = Situation(
                units=counts,
                excluded_units=collected.excluded_units,
                planned=planned_sample(
                    experiment.stopping_rules.target_sample_size or None,
                    experiment.analysis_plan.minimum_detectable_effect,
                    primary,
                    plan,
                    power=experiment.analysis_plan.power,
                    n_arms=len(order),
                ),
                first_exposed_at=collected.first_exposed_at,
                now=now,
                stopped=not running,
            )
            decision = decide(analysis, context, evaluation, situation)
        observed = Observed(collected.units, collected.excluded_units, collected.diagnostics)
        snapshot = build_snapshot(
            experiment,
            definitions,
            order,
            analysis,
            observed,
            evaluation,
            decision=decision,
            segment=(segment.dimension, segment.value) if segment is not None else None,
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )
        return snapshot, evaluation, decision

    async def _act(
        self,
        experiment: experiment_pb2.Experiment,
        evaluation: Evaluation,
        snapshot: analysis_pb2.ResultSnapshot,
    ) -> None:
        key = experiment.key
        for fired in evaluation.fired:
            STOPPING_RULE_FIRINGS.inc(fired.rule.value, "stop" if fired.stops else "alert")
        stop = evaluation.stop
        if stop is not None:
            outcome = await self._stop(key, stop)
            run = experiment.start_time.ToJsonString() if experiment.HasField("start_time") else ""
            dedup = stop_dedup_key(key, run, stop.rule.value, outcome)
            if await self._alerts.raise_once(_alert(key, stop, snapshot, outcome, dedup)):
                self._alert_raised()
            return
        firing = [_alert(key, f, snapshot, "alert", "") for f in evaluation.fired if not f.stops]
        if await self._alerts.raise_firing(key, firing):
            self._alert_raised()

    async def _stop(self, key: str, rule: FiredRule) -> str:
        try:
            await self._stopper.stop(
                key,
                f"stopping rule {rule.rule.value}: {rule.reason}",
                DECISIONS[rule.decision],
                rule.ship_variant,
                rule.details,
                plan_mapping.RULES[rule.rule],
            )
        except FailedPrecondition as error:
            log.info("%s was no longer running: %s", key, error)
            return "not_running"
        except Unavailable as error:
            log.error("could not stop %s: %s", key, error)
            return "stop_failed"
        log.warning("stopped %s: %s", key, rule.reason, extra={"experiment_key": key})
        return "stopped"


def _alert(
    key: str,
    rule: FiredRule,
    snapshot: analysis_pb2.ResultSnapshot,
    action: str,
    dedup_key: str,
) -> NewAlert:
    log.warning("analysis alert: %s: %s (%s): %s", key, rule.rule.value, action, rule.reason)
    return NewAlert(
        experiment_key=key,
        rule=rule.rule.value,
        action=action,
        decision=rule.decision.value,
        reason=rule.reason,
        details={**rule.details, "ship_variant_key": rule.ship_variant},
        snapshot_id=snapshot.id,
        dedup_key=dedup_key,
    )
