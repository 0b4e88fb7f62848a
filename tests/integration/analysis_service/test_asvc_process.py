"""End to end: the analysis process with the real ExperimentService (assignment process).

A running experiment with a sample-ratio mismatch and `srm_action: STOP` is stopped by the
scheduler through ExperimentService (the audit log records the rule's figures), the alert
reaches a local webhook receiver, and the results are readable, listable and watchable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import grpc
import pytest
from asvc_receiver import Receiver
from asvc_rows import METRIC, experiment, insert_exposures, unique_key
from conftest import MakeKey
from google.protobuf import json_format

from support.processes import RunningService
from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    common_pb2,
    experiment_pb2,
    experiment_pb2_grpc,
)
from verdict_platform.roles import Role


@pytest.mark.asyncio(loop_scope="session")
async def test_srm_stop_end_to_end(
    start_service: Callable[..., RunningService], make_key: MakeKey, pool: asyncpg.Pool
) -> None:
    admin = await make_key(Role.ADMIN)
    reader = await make_key(Role.READ)
    service_key = await make_key(Role.ADMIN)
    assignment = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    receiver = Receiver()
    auth = (("authorization", f"Bearer {admin}"),)
    read = (("authorization", f"Bearer {reader}"),)
    key = unique_key("asvc-e2e")
    try:
        async with grpc.aio.insecure_channel(assignment.target) as channel:
            experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
            try:
                await experiments.CreateMetric(
                    experiment_pb2.CreateMetricRequest(metric=METRIC), metadata=auth
                )
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.ALREADY_EXISTS
            spec = experiment(key, srm_action=experiment_pb2.SRM_ACTION_STOP)
            spec.ClearField("status")
            spec.ClearField("start_time")
            await experiments.CreateExperiment(
                experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=auth
            )
            await experiments.StartExperiment(
                experiment_pb2.StartExperimentRequest(key=key), metadata=auth
            )
            await insert_exposures(pool, key, {"control": 1_000, "treatment": 1_400})

            analysis = start_service(
                "verdict_analysis",
                "VERDICT_ANALYSIS_PORT",
                VERDICT_ASSIGNMENT_TARGET=assignment.target,
                VERDICT_SERVICE_API_KEY=service_key,
                VERDICT_ALERT_WEBHOOK_URL=receiver.url,
                VERDICT_ANALYSIS_INTERVAL="3600",
            )
            deadline = time.monotonic() + 20
            stopped = None
            while time.monotonic() < deadline:
                got = await experiments.GetExperiment(
                    experiment_pb2.GetExperimentRequest(key=key), metadata=auth
                )
                if got.experiment.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED:
                    stopped = got.experiment
                    break
                await asyncio.sleep(0.2)
            assert stopped is not None, analysis.log()
            assert stopped.decision.decision == common_pb2.DECISION_INCONCLUSIVE
            assert "srm" in stopped.decision.reason
            audit = await experiments.ListAuditEvents(
                experiment_pb2.ListAuditEventsRequest(experiment_key=key), metadata=auth
            )
            stop_event = next(e for e in audit.audit_events if e.action == "experiment.stopped")
            changes = json_format.MessageToDict(stop_event.changes)
            assert "srm" in str(changes), changes

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if receiver.bodies:
                break
            await asyncio.sleep(0.1)
        [alert] = [b for b in receiver.bodies if b["experiment_key"] == key]
        assert alert["rule"] == "srm" and alert["action"] == "stopped"

        async with grpc.aio.insecure_channel(analysis.target) as channel:
            results = analysis_pb2_grpc.AnalysisServiceStub(channel)
            latest = (
                await results.GetResults(
                    analysis_pb2.GetResultsRequest(experiment_key=key), metadata=read
                )
            ).snapshot
            assert latest.srm.mismatch
            assert dict(latest.units) == {"control": 1_000, "treatment": 1_400}
            assert latest.recommendation.decision == common_pb2.DECISION_INCONCLUSIVE

            stream = results.WatchResults(
                analysis_pb2.WatchResultsRequest(experiment_key=key), metadata=read
            )
            first = await stream.read()
            assert first.snapshot.id == latest.id
            ran = await results.RunAnalysis(
                analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=auth
            )
            started = time.monotonic()
            pushed = await asyncio.wait_for(stream.read(), 5)
            assert pushed.snapshot.id == ran.snapshot.id
            assert time.monotonic() - started < 1.0
            stream.cancel()

            page = await results.ListResultSnapshots(
                analysis_pb2.ListResultSnapshotsRequest(experiment_key=key, page_size=1),
                metadata=read,
            )
            assert [s.id for s in page.snapshots] == [ran.snapshot.id]
            rest = await results.ListResultSnapshots(
                analysis_pb2.ListResultSnapshotsRequest(
                    experiment_key=key, page_token=page.next_page_token
                ),
                metadata=read,
            )
            assert [s.id for s in rest.snapshots] == [latest.id]

            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await results.GetResults(
                    analysis_pb2.GetResultsRequest(experiment_key="nope"), metadata=read
                )
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await results.RunAnalysis(
                    analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=read
                )
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

            sized = await results.CalculateSampleSize(
                analysis_pb2.CalculateSampleSizeRequest(
                    metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
                    baseline_mean=0.1,
                    minimum_detectable_effect=0.1,
                    daily_units=1_000,
                ),
                metadata=read,
            )
            assert (
                sized.units_per_variant > 10_000
                and sized.total_units == 2 * sized.units_per_variant
            )
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await results.CalculateSampleSize(
                    analysis_pb2.CalculateSampleSizeRequest(), metadata=read
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        receiver.close()
