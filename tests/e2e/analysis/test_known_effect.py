"""A known effect through the real services, every reported figure checked against scipy and
statsmodels computed here from the same raw events.

4,000 simulated users are assigned through `AssignmentService.Assign` (their exposures reach
ingest through the assignment service's own exposure path), then their events are sent through
`IngestService.TrackEvents`; `AnalysisService.RunAnalysis` analyses the experiment (sequential
plan, Holm correction, a capped guardrail). The test keeps each user's variant and events and
recomputes, independently of the engine (`known_effect_reference`): per-variant means and
intervals, absolute and relative effects with the intervals and p-values of each scale, fixed
and anytime-valid, the Holm-adjusted decision interval, verdicts, chance to beat control, effect
sizes, SRM, the diagnostics and the decision.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import known_effect_reference as ref
import numpy as np
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    assignment_pb2,
    assignment_pb2_grpc,
    common_pb2,
    experiment_pb2,
    experiment_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

USERS = 4_000
RATES = {"control": 0.10, "treatment": 0.16}
COST_SCALE = {"control": 1.0, "treatment": 1.02}
THUMBS_UP = {"control": 0.60, "treatment": 0.66}
COST_CAP = 0.03
GHOSTS = 30
EARLY = 25
REL, ABS = 1e-8, 1e-12


@dataclass
class Users:
    """What the test sent: each user's variant and post-exposure values, and the extra events."""

    variant: dict[str, str] = field(default_factory=dict)
    converted: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    thumbs: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(ups, votes) per user."""
    early: int = 0
    """Purchase events timestamped before their unit's exposure."""


@dataclass
class Suite:
    services: list[RunningService]
    admin: tuple[tuple[str, str], ...]
    assign: tuple[tuple[str, str], ...]
    ingest: tuple[tuple[str, str], ...]
    experiments: experiment_pb2_grpc.ExperimentServiceStub
    assignment: assignment_pb2_grpc.AssignmentServiceStub
    events: ingest_pb2_grpc.IngestServiceStub
    results: analysis_pb2_grpc.AnalysisServiceStub


async def _key(pool: asyncpg.Pool, client: aioredis.Redis, settings: Settings, role: Role) -> str:
    key = await KeyStore(pool).create(f"known-{role.value}-{secrets.token_hex(3)}", role)
    await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
    return key


def _auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def suite(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[Suite]:
    admin = await _key(pool, redis_client, settings, Role.ADMIN)
    assign = await _key(pool, redis_client, settings, Role.ASSIGN)
    ingest = await _key(pool, redis_client, settings, Role.INGEST)
    analysis_key = await _key(pool, redis_client, settings, Role.ANALYSIS)
    ingest_service = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
    services = [ingest_service]
    try:
        assignment = start_service_process(
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {
                "VERDICT_INGEST_TARGET": ingest_service.target,
                "VERDICT_SERVICE_API_KEY": ingest,
            },
        )
        services.append(assignment)
        analysis = start_service_process(
            settings,
            "verdict_analysis",
            "VERDICT_ANALYSIS_PORT",
            {
                "VERDICT_ASSIGNMENT_TARGET": assignment.target,
                "VERDICT_SERVICE_API_KEY": analysis_key,
                "VERDICT_ANALYSIS_INTERVAL": "3600",
            },
        )
        services.append(analysis)
        async with (
            grpc.aio.insecure_channel(assignment.target) as a_channel,
            grpc.aio.insecure_channel(ingest_service.target) as i_channel,
            grpc.aio.insecure_channel(analysis.target) as r_channel,
        ):
            yield Suite(
                services,
                _auth(admin),
                _auth(assign),
                _auth(ingest),
                experiment_pb2_grpc.ExperimentServiceStub(a_channel),
                assignment_pb2_grpc.AssignmentServiceStub(a_channel),
                ingest_pb2_grpc.IngestServiceStub(i_channel),
                analysis_pb2_grpc.AnalysisServiceStub(r_channel),
            )
    finally:
        for service in reversed(services):
            service.stop()


def _metrics(tag: str) -> list[experiment_pb2.Metric]:
    return [
        experiment_pb2.Metric(
            key=f"conversion_{tag}",
            type=experiment_pb2.METRIC_TYPE_BINOMIAL,
            source=experiment_pb2.MetricSource(event_name=f"purchase.{tag}"),
        ),
        experiment_pb2.Metric(
            key=f"cost_{tag}",
            type=experiment_pb2.METRIC_TYPE_MEAN,
            source=experiment_pb2.MetricSource(event_name=f"call.{tag}", measure="cost_usd"),
            capping=experiment_pb2.CAPPING_TYPE_ABSOLUTE,
            capping_value=COST_CAP,
            direction=experiment_pb2.DIRECTION_DECREASE,
            non_inferiority_margin=0.20,
        ),
        experiment_pb2.Metric(
            key=f"thumbs_{tag}",
            type=experiment_pb2.METRIC_TYPE_RATIO,
            source=experiment_pb2.MetricSource(event_name=f"thumbs.{tag}", measure="up"),
            denominator=experiment_pb2.MetricSource(event_name=f"thumbs.{tag}"),
        ),
    ]


def _experiment(key: str, metrics: list[experiment_pb2.Metric]) -> experiment_pb2.Experiment:
    roles = [
        experiment_pb2.METRIC_ROLE_PRIMARY,
        experiment_pb2.METRIC_ROLE_GUARDRAIL,
        experiment_pb2.METRIC_ROLE_SECONDARY,
    ]
    return experiment_pb2.Experiment(
        key=key,
        name=key,
        variants=[
            experiment_pb2.Variant(key="control", weight=0.5, is_control=True),
            experiment_pb2.Variant(key="treatment", weight=0.5),
        ],
        coverage=1.0,
        metrics=[
            experiment_pb2.ExperimentMetric(metric_key=m.key, role=r)  # type: ignore[arg-type]
            for m, r in zip(metrics, roles, strict=True)
        ],
        analysis_plan=experiment_pb2.AnalysisPlan(
            alpha=ref.ALPHA,
            sequential=True,
            sequential_tuning_n=ref.TUNING_N,
            correction=experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM,
            minimum_detectable_effect=0.1,
        ),
    )


def _event(unit: str, name: str, at: datetime, **measures: float) -> ingest_pb2.Event:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return ingest_pb2.Event(
        event_id=str(uuid.uuid4()), unit_id=unit, name=name, timestamp=stamp, measures=measures
    )


async def _assign_all(suite: Suite, key: str, users: Users) -> list[ingest_pb2.Event]:
    """Assigns every user; returns purchase events timestamped just before some exposures."""
    early: list[ingest_pb2.Event] = []
    first_done: datetime | None = None
    for start in range(0, USERS, 200):
        batch = [f"{key}-u{i}" for i in range(start, min(start + 200, USERS))]
        before = datetime.now(UTC)
        replies = await asyncio.gather(
            *(
                suite.assignment.Assign(
                    assignment_pb2.AssignRequest(unit_id=u, experiment_keys=[key]),
                    metadata=suite.assign,
                )
                for u in batch
            )
        )
        first_done = first_done or datetime.now(UTC)
        for unit, reply in zip(batch, replies, strict=True):
            [assignment] = reply.assignments
            assert assignment.reason == assignment_pb2.ASSIGNMENT_REASON_ASSIGNED
            users.variant[unit] = assignment.variant_key
        # Sent before this batch was assigned, after the experiment's first exposure: counted
        # as "before exposure", never in the metric.
        if before - timedelta(milliseconds=1) > first_done and len(early) < EARLY:
            at = before - timedelta(milliseconds=1)
            early.append(_event(batch[0], key_name(key, "purchase"), at))
    users.early = len(early)
    return early


def key_name(key: str, kind: str) -> str:
    return f"{kind}.{key.rsplit('-', 1)[1]}"


def _behave(key: str, users: Users, at: datetime) -> list[ingest_pb2.Event]:
    """Each user's events after exposure, drawn with the known effects."""
    rng = np.random.default_rng(20250310)
    events = []
    for unit, variant in users.variant.items():
        t = at + timedelta(seconds=float(rng.uniform(0, 60)))
        converted = int(rng.random() < RATES[variant])
        if converted:
            events.append(_event(unit, key_name(key, "purchase"), t))
        users.converted[unit] = converted
        cost = 0.0
        for _ in range(int(rng.poisson(2.0))):
            c = float(rng.uniform(0.0, 0.02)) * COST_SCALE[variant]
            cost += c
            events.append(_event(unit, key_name(key, "call"), t, cost_usd=c, latency_ms=300.0))
        users.cost[unit] = cost
        ups = votes = 0.0
        if rng.random() < 0.5:
            for _ in range(int(rng.integers(1, 4))):
                up = float(rng.random() < THUMBS_UP[variant])
                ups, votes = ups + up, votes + 1
                events.append(_event(unit, key_name(key, "thumbs"), t, up=up))
        users.thumbs[unit] = (ups, votes)
    for i in range(GHOSTS):  # units never exposed: counted as such, never analysed
        ghost = f"{key}-ghost{i}"
        events.append(_event(ghost, key_name(key, "purchase"), at))
        events.append(_event(ghost, key_name(key, "call"), at, cost_usd=1.0))
        events.append(_event(ghost, key_name(key, "thumbs"), at, up=1.0))
    return events


async def _track(suite: Suite, events: list[ingest_pb2.Event]) -> None:
    for start in range(0, len(events), 1000):
        batch = events[start : start + 1000]
        reply = await suite.events.TrackEvents(
            ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=batch),
            metadata=suite.ingest,
        )
        assert reply.accepted == len(batch), reply.rejections


async def _analysed(suite: Suite, key: str) -> analysis_pb2.ResultSnapshot:
    """RunAnalysis once every exposure has reached the database."""
    found: list[analysis_pb2.ResultSnapshot] = []

    async def complete() -> bool:
        try:
            reply = await suite.results.RunAnalysis(
                analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=suite.admin
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.ABORTED:  # the scheduler holds the lock
                return False
            raise
        found[:] = [reply.snapshot]
        return sum(reply.snapshot.units.values()) == USERS

    await eventually_async(complete, timeout=60.0, interval=0.5)
    return found[0]


def _close(got: float, want: float) -> None:
    assert got == pytest.approx(want, rel=REL, abs=ABS)


def _check_figures(estimate: analysis_pb2.Estimate, want: ref.Figures, test: str) -> None:
    assert estimate.test == test
    assert estimate.sequential_test == "normal_mixture_two_sided"
    for got, expected in (
        (estimate.estimate, want.estimate),
        (estimate.std_error, want.std_error),
        (estimate.interval.lower, want.lower),
        (estimate.interval.upper, want.upper),
        (estimate.p_value, want.p_value),
        (estimate.sequential_interval.lower, want.seq_lower),
        (estimate.sequential_interval.upper, want.seq_upper),
        (estimate.sequential_p_value, want.seq_p_value),
    ):
        _close(got, expected)


def _check_arm(
    summary: analysis_pb2.VariantSummary, want: ref.Arm, units: int, method: str
) -> None:
    assert summary.units == units and summary.method == method
    _close(summary.mean, want.estimate)
    _close(summary.interval.lower, want.lower)
    _close(summary.interval.upper, want.upper)


async def test_every_figure_equals_scipy_and_statsmodels_on_the_same_raw_events(
    suite: Suite,
) -> None:
    tag = secrets.token_hex(3)
    key = f"known-{tag}"
    metrics = _metrics(tag)
    for metric in metrics:
        await suite.experiments.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=metric), metadata=suite.admin
        )
    await suite.experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=_experiment(key, metrics)),
        metadata=suite.admin,
    )
    await suite.experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key, reason="known effect"),
        metadata=suite.admin,
    )

    async def assignable() -> bool:  # the assignment snapshot follows within a second
        reply = await suite.assignment.Assign(
            assignment_pb2.AssignRequest(
                unit_id="probe", experiment_keys=[key], skip_exposure_logging=True
            ),
            metadata=suite.assign,
        )
        return reply.assignments[0].reason == assignment_pb2.ASSIGNMENT_REASON_ASSIGNED

    await eventually_async(assignable, timeout=30.0, interval=0.2)
    users = Users()
    early = await _assign_all(suite, key, users)
    assert users.early >= 5
    events = _behave(key, users, datetime.now(UTC) + timedelta(seconds=1))
    await _track(suite, [*events, *early])
    snapshot = await _analysed(suite, key)

    # ---- the independent reference, from what was sent -----------------------------------
    order = ["control", "treatment"]
    arms = {v: [u for u, w in users.variant.items() if w == v] for v in order}
    counts = [len(arms[v]) for v in order]
    conversion = ref.proportion(*(np.array([users.converted[u] for u in arms[v]]) for v in order))
    raw_cost = {v: np.array([users.cost[u] for u in arms[v]]) for v in order}
    capped = {v: np.minimum(raw_cost[v], COST_CAP) for v in order}
    cost = ref.mean(capped["control"], capped["treatment"])
    thumbs = ref.ratio(
        *(
            (
                np.array([users.thumbs[u][0] for u in arms[v]]),
                np.array([users.thumbs[u][1] for u in arms[v]]),
            )
            for v in order
        )
    )
    # Holm over the three decision p-values (relative, anytime-valid), in the snapshot's order.
    expected = [conversion, cost, thumbs]
    raw_p = [figures[3].seq_p_value for figures in expected]
    adjusted = ref.holm(raw_p)

    # ---- the snapshot, figure by figure ------------------------------------------------------
    assert dict(snapshot.units) == dict(zip(order, counts, strict=True))
    assert snapshot.excluded_units == 0
    assert (snapshot.alpha, snapshot.sequential) == (ref.ALPHA, True)
    assert snapshot.correction == experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM
    chi, anytime = ref.srm(counts, [0.5, 0.5])
    _close(snapshot.srm.p_value, chi)
    _close(snapshot.srm.sequential_p_value, anytime)
    assert not snapshot.srm.mismatch
    tests = ["z_unpooled", "welch_t", "ratio_delta_method"]
    arm_methods = ["wilson", "student_t", "ratio_delta_method"]
    increase = [True, False, True]
    for i, (result, want) in enumerate(zip(snapshot.metrics, expected, strict=True)):
        control, treatment, absolute, relative = want
        assert result.metric_key == metrics[i].key
        _check_arm(result.variants[0], control, counts[0], arm_methods[i])
        _check_arm(result.variants[1], treatment, counts[1], arm_methods[i])
        [comp] = result.comparisons
        _check_figures(comp.absolute, absolute, tests[i])
        _check_figures(comp.relative, relative, "delta_method")
        # The deprecated flat fields: the plan is sequential, so the anytime-valid ones.
        _close(comp.absolute_effect, absolute.estimate)
        _close(comp.absolute_interval.lower, absolute.seq_lower)
        _close(comp.relative_interval.upper, relative.seq_upper)
        _close(comp.p_value, raw_p[i])
        # The decision: relative, anytime-valid, Holm-adjusted; its interval at the level
        # that matches the adjusted p-value.
        basis = comp.decision_basis
        assert basis.scale == analysis_pb2.EFFECT_SCALE_RELATIVE
        assert basis.sequential and basis.adjusted and basis.alpha == ref.ALPHA
        _close(basis.p_value, adjusted[i])
        _close(comp.adjusted_p_value, adjusted[i])
        lower, upper = ref.decision_interval(relative, raw_p[i], adjusted[i])
        _close(basis.interval.lower, lower)
        _close(basis.interval.upper, upper)
        assert comp.significant == (adjusted[i] <= ref.ALPHA) == (lower > 0 or upper < 0)
        _close(comp.chance_to_beat_control, ref.chance_to_beat_control(relative, increase[i]))
        assert comp.chance_to_beat_control_fixed_horizon
    # Effect sizes: Cohen's h of the rates, Cohen's d of the capped costs; none for a ratio.
    conv, cost_cmp, thumbs_cmp = (m.comparisons[0] for m in snapshot.metrics)
    _close(conv.effect_size, ref.cohens_h(conversion[0].estimate, conversion[1].estimate))
    _close(cost_cmp.effect_size, ref.cohens_d(capped["control"], capped["treatment"]))
    assert thumbs_cmp.missing_reasons["effect_size"] == "NOT_DEFINED_FOR_METRIC_TYPE"
    # The known effects, as the verdicts read them: conversion wins; the cost guardrail (+2 %,
    # margin 20 %) is shown non-inferior.
    assert conv.verdict == analysis_pb2.METRIC_VERDICT_WIN and conv.significant
    assert cost_cmp.verdict == analysis_pb2.METRIC_VERDICT_WIN
    assert snapshot.metrics[1].non_inferiority_margin == pytest.approx(0.20)

    # ---- diagnostics and the decision -------------------------------------------------------
    diagnostics = {d.metric_key: d for d in snapshot.diagnostics.metrics}
    conv_d, cost_d, thumbs_d = (diagnostics[m.key] for m in metrics)
    assert conv_d.events_before_exposure == users.early
    assert (conv_d.events_from_unexposed_units, cost_d.events_from_unexposed_units) == (
        GHOSTS,
        GHOSTS,
    )
    assert thumbs_d.events_from_unexposed_units == GHOSTS
    assert cost_d.capped_units == sum(int((raw_cost[v] > COST_CAP).sum()) for v in order) > 0
    assert (conv_d.capped_units, cost_d.events_before_exposure) == (0, 0)
    assert snapshot.diagnostics.multiple_exposure_units == 0
    decision = snapshot.decision
    assert decision.state == analysis_pb2.DECISION_STATE_SHIP
    assert decision.variant_key == "treatment"
    assert decision.exposed_units == USERS and decision.planned_units > USERS
    rel = conversion[3]
    lower, upper = ref.decision_interval(rel, raw_p[0], adjusted[0])
    assert decision.headline == (
        f"Ship treatment: {metrics[0].key} {rel.estimate * 100:+.2f}% [{lower * 100:+.2f}%, "
        f"{upper * 100:+.2f}%] (anytime-valid, Holm-adjusted interval, alpha 0.05)"
    )
    assert snapshot.recommendation.decision == common_pb2.DECISION_KEEP_RUNNING
    # Later modules' gateways would route this experiment's units: it ends with the test.
    await suite.experiments.StopExperiment(
        experiment_pb2.StopExperimentRequest(key=key, reason="the test ends"), metadata=suite.admin
    )
