"""StopExperiment reaches ExperimentService with the rule's figures and the service key
(an in-process grpc.aio test double that records the calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format

from support.processes import free_port
from verdict.v1 import common_pb2, experiment_pb2, experiment_pb2_grpc
from verdict_analysis.grpc_stopper import GrpcStopper
from verdict_platform.errors import FailedPrecondition


class RecordingExperiments(experiment_pb2_grpc.ExperimentServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[experiment_pb2.StopExperimentRequest, dict[str, str]]] = []

    async def StopExperiment(
        self, request: experiment_pb2.StopExperimentRequest, context: Any
    ) -> experiment_pb2.StopExperimentResponse:
        self.calls.append((request, dict(context.invocation_metadata())))
        if request.key == "stopped-already":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not running")
        return experiment_pb2.StopExperimentResponse()


@pytest_asyncio.fixture(loop_scope="session")
async def double() -> AsyncIterator[tuple[RecordingExperiments, str]]:
    servicer = RecordingExperiments()
    server = grpc.aio.server()
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.mark.asyncio(loop_scope="session")
async def test_stop_carries_reason_decision_details_and_the_service_key(
    double: tuple[RecordingExperiments, str],
) -> None:
    servicer, target = double
    stopper = GrpcStopper(target, "vdk_service")
    try:
        await stopper.stop(
            "exp",
            "stopping rule efficacy: ...",
            common_pb2.DECISION_SHIP,
            "treatment",
            {"rule": "efficacy", "interval_lower": 0.01, "p_value": float("nan")},
            experiment_pb2.STOPPING_RULE_EFFICACY,
        )
    finally:
        await stopper.close()
    [(request, metadata)] = [c for c in servicer.calls if c[0].key == "exp"]
    assert request.ship_variant_key == "treatment"
    assert request.decision == common_pb2.DECISION_SHIP
    assert request.rule == experiment_pb2.STOPPING_RULE_EFFICACY
    assert json_format.MessageToDict(request.details) == {
        "rule": "efficacy",
        "interval_lower": 0.01,
        "p_value": "nan",
    }
    assert metadata["authorization"] == "Bearer vdk_service"


@pytest.mark.asyncio(loop_scope="session")
async def test_a_stop_refused_as_failed_precondition_raises_the_domain_error(
    double: tuple[RecordingExperiments, str],
) -> None:
    _servicer, target = double
    stopper = GrpcStopper(target, "vdk_service")
    try:
        with pytest.raises(FailedPrecondition):
            await stopper.stop(
                "stopped-already",
                "r",
                common_pb2.DECISION_INCONCLUSIVE,
                "",
                {},
                experiment_pb2.STOPPING_RULE_SRM,
            )
    finally:
        await stopper.close()
