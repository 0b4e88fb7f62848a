"""Operators stay in charge of automated stopping, through the real services: the analysis
service stops under its own identity and names the rule; an operator's restart is an override
that holds over later analyses; a rule can be disabled from StartExperiment; alerts are stored,
listed, and raised once across two analysis replicas and a restart."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from ops_receiver import Receiver
from ops_rows import METRIC, expose, running_experiment_spec

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import analysis_pb2, analysis_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Suite:
    assignment: RunningService
    analyses: list[RunningService]
    receiver: Receiver
    admin: tuple[tuple[str, str], ...]
    admin_name: str
    analysis_name: str
    experiments: experiment_pb2_grpc.ExperimentServiceStub
    results: analysis_pb2_grpc.AnalysisServiceStub
    analysis_env: dict[str, str]


async def _key(
    pool: asyncpg.Pool, client: aioredis.Redis, settings: Settings, role: Role
) -> tuple[str, str]:
    name = f"e2e-{role.value}-{secrets.token_hex(3)}"
    key = await KeyStore(pool).create(name, role)
    await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
    return name, key


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def suite(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, receiver: Receiver
) -> AsyncIterator[Suite]:
    admin_name, admin = await _key(pool, redis_client, settings, Role.ADMIN)
    analysis_name, analysis_key = await _key(pool, redis_client, settings, Role.ANALYSIS)
    assignment = start_service_process(settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    env = {
        "VERDICT_ASSIGNMENT_TARGET": assignment.target,
        "VERDICT_SERVICE_API_KEY": analysis_key,
        "VERDICT_ALERT_WEBHOOK_URL": receiver.url,
        "VERDICT_ANALYSIS_INTERVAL": "0.5",
    }
    analyses = [
        start_service_process(settings, "verdict_analysis", "VERDICT_ANALYSIS_PORT", env)
        for _ in range(2)
    ]
    auth = (("authorization", f"Bearer {admin}"),)
    try:
        async with (
            grpc.aio.insecure_channel(assignment.target) as a_channel,
            grpc.aio.insecure_channel(analyses[0].target) as r_channel,
        ):
            experiments = experiment_pb2_grpc.ExperimentServiceStub(a_channel)
            try:
                await experiments.CreateMetric(
                    experiment_pb2.CreateMetricRequest(metric=METRIC), metadata=auth
                )
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.ALREADY_EXISTS
            yield Suite(
                assignment,
                analyses,
                receiver,
                auth,
                admin_name,
                analysis_name,
                experiments,
                analysis_pb2_grpc.AnalysisServiceStub(r_channel),
                env,
            )
    finally:
        for service in (*analyses, assignment):
            service.stop()


async def _create_and_start(
    suite: Suite, srm_action: int, overrides: list[experiment_pb2.RuleOverride] | None = None
) -> str:
    key = f"ops-{secrets.token_hex(4)}"
    spec = running_experiment_spec(key, srm_action)
    await suite.experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=suite.admin
    )
    await suite.experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key, rule_overrides=overrides or []),
        metadata=suite.admin,
    )
    return key


async def _experiment(suite: Suite, key: str) -> experiment_pb2.Experiment:
    reply = await suite.experiments.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=key), metadata=suite.admin
    )
    return reply.experiment


async def _snapshot_count(suite: Suite, key: str) -> int:
    reply = await suite.results.ListResultSnapshots(
        analysis_pb2.ListResultSnapshotsRequest(experiment_key=key, page_size=1000),
        metadata=suite.admin,
    )
    return len(reply.snapshots)


async def _alerts(suite: Suite, key: str) -> list[analysis_pb2.Alert]:
    reply = await suite.results.ListAlerts(
        analysis_pb2.ListAlertsRequest(experiment_key=key), metadata=suite.admin
    )
    return list(reply.alerts)


async def _stopped(suite: Suite, key: str) -> experiment_pb2.Experiment | None:
    e = await _experiment(suite, key)
    return e if e.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED else None


async def test_a_rule_stops_under_the_analysis_identity_and_names_itself(
    suite: Suite, pool: asyncpg.Pool
) -> None:
    key = await _create_and_start(suite, experiment_pb2.SRM_ACTION_STOP)
    await expose(pool, key, {"control": 1_000, "treatment": 1_400})
    stopped = await eventually_async(lambda: _stopped(suite, key))
    assert stopped.decision.rule == experiment_pb2.STOPPING_RULE_SRM
    assert stopped.decision.stopped_by == suite.analysis_name
    audit = await suite.experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key), metadata=suite.admin
    )
    [stop] = [e for e in audit.audit_events if e.action == "experiment.stopped"]
    assert (stop.actor, stop.rule) == (suite.analysis_name, experiment_pb2.STOPPING_RULE_SRM)
    [start] = [e for e in audit.audit_events if e.action == "experiment.started"]
    assert (start.actor, start.rule) == (suite.admin_name, experiment_pb2.STOPPING_RULE_UNSPECIFIED)


async def test_a_restart_overrides_the_rule_and_the_override_holds(
    suite: Suite, pool: asyncpg.Pool
) -> None:
    key = await _create_and_start(suite, experiment_pb2.SRM_ACTION_STOP)
    await expose(pool, key, {"control": 1_000, "treatment": 1_400})
    await eventually_async(lambda: _stopped(suite, key))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await suite.experiments.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=suite.admin
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in (refused.value.details() or "")

    restarted = await suite.experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key, reason="bot traffic filtered upstream"),
        metadata=suite.admin,
    )
    [override] = restarted.experiment.rule_overrides
    assert override.rule == experiment_pb2.STOPPING_RULE_SRM
    assert override.mode == experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE
    assert (override.actor, override.reason) == (suite.admin_name, "bot traffic filtered upstream")

    # Several analyses on the same (still mismatched) data: the experiment keeps running.
    before = await _snapshot_count(suite, key)
    await eventually_async(lambda: _more(suite, key, before + 4), timeout=30)
    assert (await _experiment(suite, key)).status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
    latest = await suite.results.GetResults(
        analysis_pb2.GetResultsRequest(experiment_key=key), metadata=suite.admin
    )
    assert any("srm overridden by" in r for r in latest.snapshot.recommendation.reasons)
    audit = await suite.experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key), metadata=suite.admin
    )
    assert [e.action for e in audit.audit_events].count("experiment.stopped") == 1
    [alert] = await _alerts(suite, key)  # the stop's alert only; the override raised none
    assert alert.action == "stopped" and alert.rule == experiment_pb2.STOPPING_RULE_SRM


async def _more(suite: Suite, key: str, at_least: int) -> bool:
    return await _snapshot_count(suite, key) >= at_least


async def test_a_rule_disabled_at_start_never_acts(suite: Suite, pool: asyncpg.Pool) -> None:
    disable = experiment_pb2.RuleOverride(
        rule=experiment_pb2.STOPPING_RULE_SRM,
        mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE,
        reason="imbalanced by design this week",
    )
    key = await _create_and_start(suite, experiment_pb2.SRM_ACTION_STOP, [disable])
    await expose(pool, key, {"control": 1_000, "treatment": 1_400})
    await eventually_async(lambda: _more(suite, key, 4), timeout=30)
    assert (await _experiment(suite, key)).status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
    assert await _alerts(suite, key) == []


async def test_an_alert_only_rule_alerts_once_across_replicas_and_restarts(
    suite: Suite, pool: asyncpg.Pool, settings: Settings
) -> None:
    key = await _create_and_start(suite, experiment_pb2.SRM_ACTION_ALERT)
    await expose(pool, key, {"control": 1_000, "treatment": 1_400})
    alerts = await eventually_async(lambda: _delivered(suite, key))
    before = await _snapshot_count(suite, key)
    await eventually_async(lambda: _more(suite, key, before + 4), timeout=30)
    # restart one replica (its process memory is gone): still no second alert
    suite.analyses[1].stop()
    suite.analyses[1] = start_service_process(
        settings, "verdict_analysis", "VERDICT_ANALYSIS_PORT", suite.analysis_env
    )
    before = await _snapshot_count(suite, key)
    await eventually_async(lambda: _more(suite, key, before + 4), timeout=30)
    assert [a.id for a in await _alerts(suite, key)] == [a.id for a in alerts]
    posted = [b for b in suite.receiver.bodies if b["experiment_key"] == key]
    assert len(posted) == 1 and posted[0]["rule"] == "srm" and posted[0]["action"] == "alert"


async def _delivered(suite: Suite, key: str) -> list[analysis_pb2.Alert]:
    alerts = await _alerts(suite, key)
    return alerts if alerts and all(a.delivered for a in alerts) else []


async def test_exposures_per_day_and_variant_come_from_the_analysis_api(
    suite: Suite, pool: asyncpg.Pool
) -> None:
    key = await _create_and_start(suite, experiment_pb2.SRM_ACTION_IGNORE)
    await expose(pool, key, {"control": 3, "treatment": 2}, days_ago=2)
    await expose(pool, key, {"control": 1, "treatment": 4}, days_ago=0)
    timeline = await suite.results.GetExposureTimeline(
        analysis_pb2.GetExposureTimelineRequest(experiment_key=key), metadata=suite.admin
    )
    assert [dict(d.units) for d in timeline.days] == [
        {"control": 3, "treatment": 2},
        {"control": 0, "treatment": 0},
        {"control": 1, "treatment": 4},
    ]
    assert [d.day.ToDatetime().hour for d in timeline.days] == [0, 0, 0]
    assert dict(timeline.planned_shares) == {"control": 0.5, "treatment": 0.5}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await suite.results.GetExposureTimeline(
            analysis_pb2.GetExposureTimelineRequest(experiment_key="nope"), metadata=suite.admin
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(0)
