"""A service process on the real platform bootstrap whose GetExperiment sleeps for as many
seconds as its key says ("sleep-2"): the in-flight RPC of the graceful-shutdown test."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc

from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.server import Resources, ServiceDefinition, run_service


class SlowExperiments(experiment_pb2_grpc.ExperimentServiceServicer):
    async def GetExperiment(self, request: Any, context: Any) -> Any:
        if request.key.startswith("sleep-"):
            await asyncio.sleep(float(request.key.removeprefix("sleep-")))
        return experiment_pb2.GetExperimentResponse(
            experiment=experiment_pb2.Experiment(key=request.key)
        )


class SlowService:
    service_names: Sequence[str] = ("verdict.v1.ExperimentService",)

    def register(self, server: grpc.aio.Server) -> None:
        experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(SlowExperiments(), server)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def build(_resources: Resources, _settings: None) -> SlowService:
    return SlowService()


if __name__ == "__main__":
    run_service(ServiceDefinition("slow", lambda s: s.assignment_port, lambda _reader: None, build))
