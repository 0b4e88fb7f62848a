"""A service started as a process on the real bootstrap: buf curl reaches health and lists the
services by reflection; SIGTERM flips health and lets an in-flight RPC finish."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.eventually import eventually
from support.processes import RunningService, refuses_connections, start_service_process
from support.slow_service import HOLDING
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.settings import Settings

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or "buf"
TESTS = Path(__file__).resolve().parents[2]


def _start(settings: Settings) -> RunningService:
    return start_service_process(
        settings,
        "support.slow_service",
        "VERDICT_ASSIGNMENT_PORT",
        {"PYTHONPATH": str(TESTS), "VERDICT_GRACE_PERIOD_S": "8"},
    )


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    """http://host:port of a service process shared by the module's read-only tests."""
    service = _start(settings)
    yield f"http://{service.target}"
    service.stop()


@pytest.fixture
def slow_service(settings: Settings) -> Iterator[RunningService]:
    """A service process of the test's own (the test stops it)."""
    service = _start(settings)
    yield service
    service.stop()


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_buf_curl_reaches_the_health_service(base_url: str) -> None:
    health = buf_curl(f"{base_url}/grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_each_service_reports_its_own_health(base_url: str) -> None:
    per_service = buf_curl(
        "-d",
        '{"service": "verdict.v1.ExperimentService"}',
        f"{base_url}/grpc.health.v1.Health/Check",
    )
    assert per_service.returncode == 0, per_service.stderr
    assert json.loads(per_service.stdout) == {"status": "SERVING"}


def test_buf_curl_lists_the_services_by_reflection(base_url: str) -> None:
    listed = buf_curl("--list-services", base_url)
    assert listed.returncode == 0, listed.stderr
    assert {"verdict.v1.ExperimentService", "grpc.health.v1.Health"} <= set(listed.stdout.split())


def test_an_rpc_without_a_key_is_unauthenticated(base_url: str) -> None:
    unauthenticated = buf_curl(
        "-d", '{"key": "k"}', f"{base_url}/verdict.v1.ExperimentService/GetExperiment"
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
            experiment_pb2.GetExperimentRequest(key="hold"), metadata=meta
        )
        eventually(lambda: HOLDING in slow_service.log())  # it reached the servicer
        slow_service.terminate()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Past the drain delay the server refuses new connections: it is in its grace period.
        eventually(lambda: refuses_connections(slow_service.target))
        assert not in_flight.done()  # held by the service until told
        slow_service.proc.send_signal(signal.SIGUSR1)
        reply = in_flight.result(timeout=20)
        assert reply.experiment.key == "hold"
    assert slow_service.proc.wait(20) == 0
    assert "stopped" in slow_service.log()
