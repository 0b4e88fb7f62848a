"""A service process on the real platform bootstrap whose GetExperiment for the key "hold" is
held until the process receives SIGUSR1: the in-flight RPC of the graceful-shutdown test.

It prints "holding GetExperiment" once the call has arrived, so that the test knows the RPC is
in flight before it sends SIGTERM, and releases it only when told, so that the RPC is provably
still running when the shutdown begins.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import Any

import grpc

from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.server import Resources, ServiceDefinition, run_service

HOLDING = "holding GetExperiment"


class SlowExperiments(experiment_pb2_grpc.ExperimentServiceServicer):
    async def GetExperiment(self, request: Any, context: Any) -> Any:
        if request.key == "hold":
            released = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, released.set)
            print(HOLDING, flush=True)
            await released.wait()
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
