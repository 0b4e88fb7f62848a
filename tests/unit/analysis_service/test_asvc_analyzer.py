"""The analysis use case with in-memory fakes: store, publish, stop through the port, alert."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from asvc_data import conversions
from asvc_data import latency as latency_input
from asvc_fakes import (
    FakeAlertLog,
    FakeCatalog,
    FakeLocks,
    FakePublisher,
    FakeReader,
    FakeSnapshots,
    FakeStopper,
)

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis import stats
from verdict_analysis.analyzer import Analyzer
from verdict_analysis.metrics import CollectedStats, MetricDiagnostics
from verdict_platform.errors import Aborted, FailedPrecondition, NotFound

NOW = datetime(2025, 1, 15, tzinfo=UTC)


def _experiment(
    status: int = experiment_pb2.EXPERIMENT_STATUS_RUNNING, **rules: object
) -> experiment_pb2.Experiment:
    experiment = experiment_pb2.Experiment(
        key="exp",
        status=status,  # type: ignore[arg-type]
        variants=[
            experiment_pb2.Variant(key="control", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="treatment", weight=0.5),
        ],
        metrics=[
            experiment_pb2.ExperimentMetric(
                metric_key="conversion", role=experiment_pb2.METRIC_ROLE_PRIMARY
            )
        ],
        analysis_plan=experiment_pb2.AnalysisPlan(sequential=True, segments=["country"]),
        stopping_rules=experiment_pb2.StoppingRules(**rules),  # type: ignore[arg-type]
    )
    experiment.start_time.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC))
    return experiment


CONVERSION = experiment_pb2.Metric(
    key="conversion",
    type=experiment_pb2.METRIC_TYPE_BINOMIAL,
    source=experiment_pb2.MetricSource(event_name="purchase"),
)


def _analyzer(
    experiment: experiment_pb2.Experiment,
    treatment: tuple[int, int],
    units: int = 10_000,
    *,
    extra: tuple[experiment_pb2.Metric, stats.MetricInput] | None = None,
    **collected_fields: object,
) -> tuple[Analyzer, FakeSnapshots, FakePublisher, FakeStopper, FakeAlertLog, FakeLocks]:
    """The use case on fakes; `extra` adds a metric (definition, statistics) to the catalog
    and the collected statistics; `collected_fields` replace those of `CollectedStats`."""
    collected = CollectedStats(
        units={"control": units, "treatment": treatment[0]},
        excluded_units=3,
        metrics=[conversions("conversion", (units, 1_000), treatment)],
    )
    definitions = [CONVERSION]
    if extra is not None:
        definitions.append(extra[0])
        collected.metrics.append(extra[1])
    collected = dataclasses.replace(collected, **collected_fields)  # type: ignore[arg-type]
    locks = FakeLocks(FakeReader(collected, {"country": ["FR", "DE"]}))
    snapshots, publisher, stopper, alerter = (
        FakeSnapshots(),
        FakePublisher(),
        FakeStopper(),
        FakeAlertLog(),
    )
    analyzer = Analyzer(
        FakeCatalog([experiment], definitions),
        locks,
        snapshots,
        publisher,
        stopper,
        alerter,
        clock=lambda: NOW,
    )
    return analyzer, snapshots, publisher, stopper, alerter, locks


@pytest.mark.asyncio(loop_scope="session")
async def test_run_stores_whole_population_and_segments_and_publishes() -> None:
    analyzer, snapshots, publisher, stopper, _, _ = _analyzer(_experiment(), (10_000, 1_010))
    snapshot = await analyzer.run("exp")
    assert snapshot is not None and snapshot.id == 1
    assert dict(snapshot.units) == {"control": 10_000, "treatment": 10_000}
    assert snapshot.excluded_units == 3
    assert [v.variant_key for v in snapshot.metrics[0].variants] == ["control", "treatment"]
    comparison = snapshot.metrics[0].comparisons[0]
    assert comparison.relative_effect == pytest.approx(0.01)
    assert 0 < comparison.p_value <= comparison.adjusted_p_value <= 1
    assert snapshot.recommendation.decision == common_pb2.DECISION_KEEP_RUNNING
    assert [(s.segment.dimension, s.segment.value) for s in snapshots.rows[1:]] == [
        ("country", "FR"),
        ("country", "DE"),
    ]
    assert publisher.keys == ["exp"]
    assert stopper.calls == []


@pytest.mark.asyncio(loop_scope="session")
async def test_fired_rule_stops_through_the_port_with_details_and_alerts() -> None:
    analyzer, _, _, stopper, alerter, _ = _analyzer(
        _experiment(efficacy=True, min_units_per_variant=1_000), (10_000, 1_300)
    )
    snapshot = await analyzer.run("exp")
    assert snapshot is not None
    assert snapshot.recommendation.decision == common_pb2.DECISION_SHIP
    assert snapshot.recommendation.variant_key == "treatment"
    [call] = stopper.calls
    assert call["decision"] == common_pb2.DECISION_SHIP and call["ship"] == "treatment"
    assert call["details"]["rule"] == "efficacy" and call["details"]["interval_lower"] > 0
    assert call["rule"] == experiment_pb2.STOPPING_RULE_EFFICACY
    [alert] = alerter.raised
    assert alert.action == "stopped" and alert.rule == "efficacy"
    assert alert.snapshot_id == snapshot.id


@pytest.mark.asyncio(loop_scope="session")
async def test_srm_alert_only_alerts_once_while_it_persists() -> None:
    analyzer, _, _, stopper, alerter, _ = _analyzer(
        _experiment(srm_action=experiment_pb2.SRM_ACTION_ALERT), (11_000, 1_100)
    )
    await analyzer.run("exp")
    await analyzer.run("exp")
    assert stopper.calls == []
    assert [a.rule for a in alerter.raised] == ["srm"]


@pytest.mark.asyncio(loop_scope="session")
async def test_stopped_experiment_is_analysed_without_action() -> None:
    analyzer, _, _, stopper, alerter, _ = _analyzer(
        _experiment(experiment_pb2.EXPERIMENT_STATUS_STOPPED, efficacy=True), (10_000, 1_300)
    )
    assert await analyzer.run("exp") is not None
    assert stopper.calls == [] and alerter.raised == []


@pytest.mark.asyncio(loop_scope="session")
async def test_unknown_draft_and_locked_experiments_are_refused() -> None:
    analyzer, _, _, _, _, locks = _analyzer(_experiment(), (10_000, 1_000))
    with pytest.raises(NotFound):
        await analyzer.run("nope")
    locks.held.add("exp")
    with pytest.raises(Aborted):
        await analyzer.run("exp")
    draft, *_ = _analyzer(_experiment(experiment_pb2.EXPERIMENT_STATUS_DRAFT), (10_000, 1_000))
    with pytest.raises(FailedPrecondition):
        await draft.run("exp")


def _overridden(rule: int, **baseline: object) -> experiment_pb2.Experiment:
    experiment = _experiment(efficacy=True, min_units_per_variant=1_000)
    override = experiment.rule_overrides.add(
        rule=rule,  # type: ignore[arg-type]
        mode=experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE,
        actor="alice",
        reason="holiday traffic",
    )
    override.baseline.update(baseline)
    return experiment


@pytest.mark.asyncio(loop_scope="session")
async def test_an_overridden_rule_does_not_stop_again_on_the_same_evidence() -> None:
    # 10.0 % vs 11.6 %: the sequential interval excludes zero at alpha 0.05, not at 0.005.
    experiment = _overridden(
        experiment_pb2.STOPPING_RULE_EFFICACY, metric="conversion", variant="treatment"
    )
    analyzer, _, _, stopper, alerter, _ = _analyzer(experiment, (10_000, 1_160))
    snapshot = await analyzer.run("exp")
    assert snapshot is not None
    assert stopper.calls == [] and alerter.raised == []
    assert snapshot.recommendation.decision == common_pb2.DECISION_KEEP_RUNNING
    assert any(
        "overridden by alice (holiday traffic)" in r for r in snapshot.recommendation.reasons
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_an_overridden_rule_acts_again_when_the_evidence_crosses_the_stricter_bound() -> None:
    # 10.0 % vs 13.0 %: excludes zero at a tenth of alpha too.
    experiment = _overridden(
        experiment_pb2.STOPPING_RULE_EFFICACY, metric="conversion", variant="treatment"
    )
    analyzer, _, _, stopper, _, _ = _analyzer(experiment, (10_000, 1_300))
    await analyzer.run("exp")
    [call] = stopper.calls
    assert call["rule"] == experiment_pb2.STOPPING_RULE_EFFICACY


@pytest.mark.asyncio(loop_scope="session")
async def test_overriding_another_rule_does_not_quiet_efficacy() -> None:
    experiment = _overridden(experiment_pb2.STOPPING_RULE_SRM)
    analyzer, _, _, stopper, _, _ = _analyzer(experiment, (10_000, 1_160))
    await analyzer.run("exp")
    assert [c["rule"] for c in stopper.calls] == [experiment_pb2.STOPPING_RULE_EFFICACY]


@pytest.mark.asyncio(loop_scope="session")
async def test_snapshot_carries_the_decision_plan_figures_and_diagnostics() -> None:
    experiment = _experiment(target_sample_size=50_000)
    experiment.analysis_plan.proportion_test = experiment_pb2.PROPORTION_TEST_POOLED
    analyzer, snapshots, *_ = _analyzer(
        experiment,
        (10_000, 1_010),
        first_exposed_at=NOW - timedelta(days=2),
        diagnostics=(MetricDiagnostics("conversion", 7, 11, 0),),
    )
    snapshot = await analyzer.run("exp")
    assert snapshot is not None
    decision = snapshot.decision
    assert decision.state == analysis_pb2.DECISION_STATE_KEEP_RUNNING
    # 20,000 units in 2 days: 10,000 a day; 30,000 to go.
    assert decision.planned_units == 50_000 and decision.exposed_units == 20_000
    assert decision.daily_units == pytest.approx(10_000)
    assert decision.days_remaining == pytest.approx(3.0)
    comparison = snapshot.metrics[0].comparisons[0]
    assert comparison.absolute.test == "z_pooled" and comparison.relative.test == "delta_method"
    assert comparison.absolute.sequential_test == "normal_mixture_two_sided"
    assert comparison.decision_basis.scale == analysis_pb2.EFFECT_SCALE_RELATIVE
    assert comparison.decision_basis.sequential and comparison.decision_basis.adjusted
    assert snapshot.sequential and snapshot.alpha == 0.05
    assert snapshot.correction == experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM
    [diagnostics] = snapshot.diagnostics.metrics
    assert (diagnostics.events_before_exposure, diagnostics.events_from_unexposed_units) == (7, 11)
    assert snapshot.diagnostics.multiple_exposure_units == 3
    # Segments carry the experiment's decision, worked out on the whole population.
    for part in snapshots.rows[1:]:
        assert part.decision == decision and not part.HasField("diagnostics")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_guardrail_margin_from_the_catalog_reaches_its_verdict() -> None:
    experiment = _experiment()
    experiment.metrics.add(metric_key="latency", role=experiment_pb2.METRIC_ROLE_GUARDRAIL)
    latency = experiment_pb2.Metric(
        key="latency",
        type=experiment_pb2.METRIC_TYPE_MEAN,
        source=experiment_pb2.MetricSource(event_name="llm.call", measure="latency_ms"),
        direction=experiment_pb2.DIRECTION_DECREASE,
        non_inferiority_margin=0.02,
    )

    async def verdict(treatment_mean: float) -> analysis_pb2.Comparison:
        metric = latency_input("latency", 10_000, 500.0, treatment_mean, 50.0)
        analyzer, *_ = _analyzer(experiment, (10_000, 1_000), extra=(latency, metric))
        snapshot = await analyzer.run("exp")
        assert snapshot is not None
        result = snapshot.metrics[1]
        assert result.non_inferiority_margin == pytest.approx(0.02)
        assert result.direction == experiment_pb2.DIRECTION_DECREASE
        return result.comparisons[0]

    # +0.6 %, significant, but within the 2 % margin: non-inferior (a win), not a loss.
    within = await verdict(503.0)
    assert within.verdict == analysis_pb2.METRIC_VERDICT_WIN
    beyond = await verdict(530.0)
    assert beyond.verdict == analysis_pb2.METRIC_VERDICT_LOSS
