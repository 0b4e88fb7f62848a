"""The analysis process with the real ExperimentService (an assignment process), started once for
the module.

Set-up: a running experiment with a sample-ratio mismatch (1,000 against 1,400 units) and
`srm_action: STOP`, then the analysis process with an hourly schedule, so that its first pass is
the only scheduled analysis. The tests pin what follows (the stop, its audit entry, the alert)
and what the results RPCs answer about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
from asvc_receiver import Receiver
from asvc_rows import METRIC, experiment, insert_exposures, unique_key
from google.protobuf import json_format

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    common_pb2,
    experiment_pb2,
    experiment_pb2_grpc,
)
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Running:
    """Both processes, the webhook receiver, the experiment, and the callers' credentials."""

    key: str
    assignment: RunningService
    analysis: RunningService
    receiver: Receiver
    admin: Metadata
    reader: Metadata


async def _start_srm_experiment(target: str, admin: Metadata, pool: asyncpg.Pool) -> str:
    key = unique_key("asvc-e2e")
    async with grpc.aio.insecure_channel(target) as channel:
        experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
        try:
            await experiments.CreateMetric(
                experiment_pb2.CreateMetricRequest(metric=METRIC), metadata=admin
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        spec = experiment(key, srm_action=experiment_pb2.SRM_ACTION_STOP)
        spec.ClearField("status")
        spec.ClearField("start_time")
        await experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=admin
        )
        await experiments.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=admin
        )
    await insert_exposures(pool, key, {"control": 1_000, "treatment": 1_400})
    return key


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(
    settings: Settings, pool: asyncpg.Pool, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Running]:
    admin = (("authorization", f"Bearer {await make_key(Role.ADMIN)}"),)
    reader = (("authorization", f"Bearer {await make_key(Role.READ)}"),)
    service_key = await make_key(Role.ADMIN)
    receiver = Receiver()
    assignment = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        key = await _start_srm_experiment(assignment.target, admin, pool)
        analysis = await asyncio.to_thread(
            start_service_process,
            settings,
            "verdict_analysis",
            "VERDICT_ANALYSIS_PORT",
            {
                "VERDICT_ASSIGNMENT_TARGET": assignment.target,
                "VERDICT_SERVICE_API_KEY": service_key,
                "VERDICT_ALERT_WEBHOOK_URL": receiver.url,
                "VERDICT_ANALYSIS_INTERVAL": "3600",
            },
        )
        try:
            yield Running(key, assignment, analysis, receiver, admin, reader)
        finally:
            await asyncio.to_thread(analysis.stop)
    finally:
        await asyncio.to_thread(assignment.stop)
        receiver.close()


@pytest_asyncio.fixture(loop_scope="session")
async def experiments(running: Running) -> AsyncIterator[experiment_pb2_grpc.ExperimentServiceStub]:
    async with grpc.aio.insecure_channel(running.assignment.target) as channel:
        yield experiment_pb2_grpc.ExperimentServiceStub(channel)


@pytest_asyncio.fixture(loop_scope="session")
async def results(running: Running) -> AsyncIterator[analysis_pb2_grpc.AnalysisServiceStub]:
    async with grpc.aio.insecure_channel(running.analysis.target) as channel:
        yield analysis_pb2_grpc.AnalysisServiceStub(channel)


async def _stopped(
    running: Running, experiments: experiment_pb2_grpc.ExperimentServiceStub
) -> experiment_pb2.Experiment:
    async def stopped() -> experiment_pb2.Experiment | None:
        got = await experiments.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=running.key), metadata=running.admin
        )
        status = got.experiment.status
        return got.experiment if status == experiment_pb2.EXPERIMENT_STATUS_STOPPED else None

    return await eventually_async(stopped, describe=running.analysis.log)


async def _latest(running: Running, results: analysis_pb2_grpc.AnalysisServiceStub) -> str:
    """The id of the experiment's latest snapshot (after the scheduler's stop)."""
    reply = await results.GetResults(
        analysis_pb2.GetResultsRequest(experiment_key=running.key), metadata=running.reader
    )
    snapshot_id: str = reply.snapshot.id
    return snapshot_id


async def test_the_scheduler_stops_an_experiment_whose_srm_rule_fires(
    running: Running, experiments: experiment_pb2_grpc.ExperimentServiceStub
) -> None:
    stopped = await _stopped(running, experiments)
    assert stopped.decision.decision == common_pb2.DECISION_INCONCLUSIVE
    assert "srm" in stopped.decision.reason


async def test_the_automated_stop_is_audited_with_the_rules_figures(
    running: Running, experiments: experiment_pb2_grpc.ExperimentServiceStub
) -> None:
    await _stopped(running, experiments)
    audit = await experiments.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=running.key), metadata=running.admin
    )
    [stop] = [e for e in audit.audit_events if e.action == "experiment.stopped"]
    assert stop.rule == experiment_pb2.STOPPING_RULE_SRM
    details = json_format.MessageToDict(stop.changes)["details"]
    assert details["rule"] == "srm"
    assert details["p_value"] <= details["threshold"]
    assert details["observed_shares"] == "0.417, 0.583"


async def test_the_stop_alert_reaches_the_webhook(running: Running) -> None:
    def alerts() -> list[dict[str, object]]:
        return [b for b in running.receiver.bodies if b["experiment_key"] == running.key]

    [alert] = await eventually_async(alerts, describe=running.analysis.log)
    assert alert["rule"] == "srm" and alert["action"] == "stopped"


async def test_results_show_the_mismatch_and_no_decision(
    running: Running,
    experiments: experiment_pb2_grpc.ExperimentServiceStub,
    results: analysis_pb2_grpc.AnalysisServiceStub,
) -> None:
    await _stopped(running, experiments)
    latest = (
        await results.GetResults(
            analysis_pb2.GetResultsRequest(experiment_key=running.key), metadata=running.reader
        )
    ).snapshot
    assert latest.srm.mismatch
    assert dict(latest.units) == {"control": 1_000, "treatment": 1_400}
    assert latest.recommendation.decision == common_pb2.DECISION_INCONCLUSIVE


async def test_watching_results_gets_the_latest_then_each_new_analysis(
    running: Running,
    experiments: experiment_pb2_grpc.ExperimentServiceStub,
    results: analysis_pb2_grpc.AnalysisServiceStub,
) -> None:
    await _stopped(running, experiments)
    latest = await _latest(running, results)
    stream = results.WatchResults(
        analysis_pb2.WatchResultsRequest(experiment_key=running.key), metadata=running.reader
    )
    try:
        first = await stream.read()
        assert first.snapshot.id == latest
        ran = await results.RunAnalysis(
            analysis_pb2.RunAnalysisRequest(experiment_key=running.key), metadata=running.admin
        )
        # The schedule is hourly: only the analysis just run can have produced what comes next.
        pushed = await asyncio.wait_for(stream.read(), 20)
        assert pushed.snapshot.id == ran.snapshot.id
    finally:
        stream.cancel()


async def test_result_snapshots_are_listed_newest_first_a_page_at_a_time(
    running: Running,
    experiments: experiment_pb2_grpc.ExperimentServiceStub,
    results: analysis_pb2_grpc.AnalysisServiceStub,
) -> None:
    await _stopped(running, experiments)
    before = await _latest(running, results)
    ran = await results.RunAnalysis(
        analysis_pb2.RunAnalysisRequest(experiment_key=running.key), metadata=running.admin
    )
    page = await results.ListResultSnapshots(
        analysis_pb2.ListResultSnapshotsRequest(experiment_key=running.key, page_size=1),
        metadata=running.reader,
    )
    assert [s.id for s in page.snapshots] == [ran.snapshot.id]
    rest = await results.ListResultSnapshots(
        analysis_pb2.ListResultSnapshotsRequest(
            experiment_key=running.key, page_token=page.next_page_token
        ),
        metadata=running.reader,
    )
    assert rest.snapshots[0].id == before
    assert ran.snapshot.id not in {s.id for s in rest.snapshots}


async def test_results_of_an_unknown_experiment_are_not_found(
    running: Running, results: analysis_pb2_grpc.AnalysisServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await results.GetResults(
            analysis_pb2.GetResultsRequest(experiment_key="nope"), metadata=running.reader
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_read_key_may_not_run_an_analysis(
    running: Running, results: analysis_pb2_grpc.AnalysisServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await results.RunAnalysis(
            analysis_pb2.RunAnalysisRequest(experiment_key=running.key), metadata=running.reader
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reader_gets_a_sample_size(
    running: Running, results: analysis_pb2_grpc.AnalysisServiceStub
) -> None:
    sized = await results.CalculateSampleSize(
        analysis_pb2.CalculateSampleSizeRequest(
            metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
            baseline_mean=0.1,
            minimum_detectable_effect=0.1,
            daily_units=1_000,
        ),
        metadata=running.reader,
    )
    assert sized.units_per_variant > 10_000
    assert sized.total_units == 2 * sized.units_per_variant


async def test_an_empty_sample_size_request_is_invalid_argument(
    running: Running, results: analysis_pb2_grpc.AnalysisServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await results.CalculateSampleSize(
            analysis_pb2.CalculateSampleSizeRequest(), metadata=running.reader
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
