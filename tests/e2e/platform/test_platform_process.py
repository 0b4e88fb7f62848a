"""A service started as a process on the real bootstrap: buf curl reaches health and lists the
services by reflection; SIGTERM flips health and lets an in-flight RPC finish."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.processes import RunningService, start_service_process
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.settings import Settings

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or "buf"
TESTS = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_service(settings: Settings) -> Iterator[RunningService]:
    service = start_service_process(
        settings,
        "support.slow_service",
        "VERDICT_ASSIGNMENT_PORT",
        {"PYTHONPATH": str(TESTS), "VERDICT_GRACE_PERIOD_S": "8"},
    )
    yield service
    service.stop()


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_buf_curl_health_and_reflection(slow_service: RunningService) -> None:
    base = f"http://{slow_service.target}"
    health = buf_curl(f"{base}/grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}
    per_service = buf_curl(
        "-d", '{"service": "verdict.v1.ExperimentService"}', f"{base}/grpc.health.v1.Health/Check"
    )
    assert json.loads(per_service.stdout) == {"status": "SERVING"}
    listed = buf_curl("--list-services", base)
    assert listed.returncode == 0, listed.stderr
    assert {"verdict.v1.ExperimentService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    unauthenticated = buf_curl(
        "-d", '{"key": "k"}', f"{base}/verdict.v1.ExperimentService/GetExperiment"
    )
    assert unauthenticated.returncode != 0
    assert "unauthenticated" in unauthenticated.stderr.lower()


def test_sigterm_flips_health_and_lets_in_flight_rpc_finish(
    slow_service: RunningService, make_key_sync: str
) -> None:
    meta = (("authorization", f"Bearer {make_key_sync}"),)
    with grpc.insecure_channel(slow_service.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service="verdict.v1.ExperimentService"))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = stub.GetExperiment.future(
            experiment_pb2.GetExperimentRequest(key="sleep-3"), metadata=meta
        )
        time.sleep(0.5)
        started = time.monotonic()
        slow_service.terminate()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        reply = in_flight.result(timeout=20)
        assert reply.experiment.key == "sleep-3"
        assert time.monotonic() - started >= 2.0  # it really was still running at SIGTERM
    assert slow_service.proc.wait(20) == 0
    assert "stopped" in slow_service.log()
