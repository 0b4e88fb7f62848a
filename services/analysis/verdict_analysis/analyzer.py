"""The analysis use case: lock, collect, analyse, store, publish, then apply the stopping rules.

One run of one experiment holds its advisory lock throughout, so two replicas never analyse (or
stop) the same experiment at once. Stopping rules act only on RUNNING experiments; a stopped
experiment can still be analysed (its final results), with no action taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_analysis import plans, stats
from verdict_analysis.alerts import Alerter
from verdict_analysis.collector import Locks, StatsReader
from verdict_analysis.metrics import MetricSpec, Segment, SpecError, metric_spec_from_proto
from verdict_analysis.ports import Catalog, Clock, ResultsPublisher, SnapshotRepository
from verdict_analysis.snapshot_builder import DECISIONS, build_snapshot
from verdict_analysis.stopper import Stopper
from verdict_analysis.stopping import Evaluation, FiredRule, Rules, SrmPolicy, evaluate
from verdict_platform.errors import FailedPrecondition, NotFound, Unavailable

log = logging.getLogger(__name__)

_E = experiment_pb2
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
        alerter: Alerter,
        clock: Clock = utc_now,
    ) -> None:
        self._catalog = catalog
        self._locks = locks
        self._snapshots = snapshots
        self._publisher = publisher
        self._stopper = stopper
        self._alerter = alerter
        self._clock = clock
        self._alerted: set[tuple[str, str]] = set()

    async def run(
        self, experiment_key: str, *, fresher_than_s: float | None = None
    ) -> analysis_pb2.ResultSnapshot | None:
        """Analyses now and returns the stored snapshot.

        With `fresher_than_s`, returns None without analysing when a snapshot younger than that
        exists (another replica just did it): the scheduler's way of sharing the work.
        Raises NotFound, FailedPrecondition (draft), Aborted (locked elsewhere), Unavailable.
        """
        experiment = await self._catalog.experiment(experiment_key)
        if experiment is None:
            raise NotFound(f"experiment {experiment_key!r} not found")
        if experiment.status == _E.EXPERIMENT_STATUS_DRAFT:
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
            snapshot, evaluation = await self._analyse(experiment, definitions, reader, None)
            stored = await self._snapshots.add(snapshot)
            await self._publisher.published(experiment_key)
            if experiment.status == _E.EXPERIMENT_STATUS_RUNNING:
                await self._act(experiment, evaluation, stored)
            for dimension in experiment.analysis_plan.segments:
                for value in await reader.segment_values(experiment_key, dimension):
                    segment = Segment(dimension, value)
                    part, _ = await self._analyse(experiment, definitions, reader, segment)
                    await self._snapshots.add(part)
            return stored

    async def _analyse(
        self,
        experiment: experiment_pb2.Experiment,
        definitions: Mapping[str, experiment_pb2.Metric],
        reader: StatsReader,
        segment: Segment | None,
    ) -> tuple[analysis_pb2.ResultSnapshot, Evaluation]:
        started = time.perf_counter()
        plan = plans.analysis_plan(experiment)
        order = plans.variant_keys(experiment)
        collected = await reader.collect(
            experiment.key,
            order,
            plans.control_key(experiment),
            _specs(experiment, definitions),
            cuped_lookback_s=plans.cuped_lookback_s(experiment),
            segment=segment,
            quantile_alpha=plan.alpha,
        )
        if plan.variant_weights is not None:
            plan = replace(plan, variant_weights={k: plan.variant_weights[k] for k in order})
        analysis = stats.analyze_experiment(
            collected.metrics, plan, assignment_counts={k: collected.units[k] for k in order}
        )
        running = experiment.status == _E.EXPERIMENT_STATUS_RUNNING
        # Segments inform; only the whole population may stop an experiment.
        rules = plans.stopping_rules(experiment) if running and segment is None else _NO_RULES
        started_at = (
            experiment.start_time.ToDatetime(tzinfo=UTC)
            if experiment.HasField("start_time")
            else None
        )
        evaluation = evaluate(
            analysis,
            plans.metric_context(experiment, definitions),
            collected.units,
            rules,
            started_at=started_at,
            now=self._clock(),
        )
        snapshot = build_snapshot(
            experiment,
            definitions,
            order,
            analysis,
            collected.units,
            collected.excluded_units,
            evaluation,
            segment=(segment.dimension, segment.value) if segment is not None else None,
            duration_ms=(time.perf_counter() - started) * 1000.0,
        )
        return snapshot, evaluation

    async def _act(
        self,
        experiment: experiment_pb2.Experiment,
        evaluation: Evaluation,
        snapshot: analysis_pb2.ResultSnapshot,
    ) -> None:
        key = experiment.key
        stop = evaluation.stop
        if stop is not None:
            outcome = await self._stop(key, stop)
            await self._alert(key, stop, snapshot, outcome)
            return
        firing = {(key, f.rule.value) for f in evaluation.fired}
        for fired in evaluation.fired:
            if (key, fired.rule.value) not in self._alerted:
                await self._alert(key, fired, snapshot, "alert")
        self._alerted = {a for a in self._alerted if a[0] != key} | firing

    async def _stop(self, key: str, rule: FiredRule) -> str:
        try:
            await self._stopper.stop(
                key,
                f"stopping rule {rule.rule.value}: {rule.reason}",
                DECISIONS[rule.decision],
                rule.ship_variant,
                rule.details,
            )
        except FailedPrecondition as error:
            log.info("%s was no longer running: %s", key, error)
            return "not_running"
        except Unavailable as error:
            log.error("could not stop %s: %s", key, error)
            return "stop_failed"
        log.warning("stopped %s: %s", key, rule.reason, extra={"experiment_key": key})
        return "stopped"

    async def _alert(
        self,
        key: str,
        rule: FiredRule,
        snapshot: analysis_pb2.ResultSnapshot,
        action: str,
    ) -> None:
        alert: dict[str, Any] = {
            "experiment_key": key,
            "rule": rule.rule.value,
            "action": action,
            "decision": rule.decision.value,
            "ship_variant_key": rule.ship_variant,
            "reason": rule.reason,
            "details": dict(rule.details),
            "snapshot_id": snapshot.id,
            "time": self._clock().isoformat(),
            "summary": f"{key}: {rule.rule.value} ({action}): {rule.reason}",
        }
        await self._alerter.send(alert)
