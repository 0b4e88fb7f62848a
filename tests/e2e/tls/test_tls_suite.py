"""TLS everywhere: the whole suite started by `verdict up` with a test CA and mutual TLS. The
launcher's health checks, assignment → ingest (exposures) and analysis → assignment (a stopping
rule's StopExperiment) all go over mTLS with the server name checked; the README tour runs with
`buf curl` over TLS and the Python client (tracker, local evaluation) connects with
`ChannelSecurity`; `/metrics` is served over TLS too; a plaintext client, a client without a
certificate, one from another CA and one expecting another server name are refused."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.eventually import eventually
from support.pki import SERVER_NAME, Pki, make_pki
from support.processes import free_port
from verdict import LocalEvaluator, Tracker, TrackerOptions
from verdict.channels import ChannelSecurity, sync_channel
from verdict.v1 import experiment_pb2, experiment_pb2_grpc
from verdict_platform.launcher import SERVICES
from verdict_platform.settings import Settings

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or "buf"
GRPC = [svc for svc in SERVICES if svc.grpc and svc.installed()]


@dataclass
class TlsSuite:
    pki: Pki
    ports: dict[str, int]
    metrics: dict[str, int]
    key: str
    data_dir: Path

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def security(self, **overrides: Any) -> ChannelSecurity:
        """What an operator's client uses: the CA, its certificate, the services' name."""
        files: dict[str, Any] = {
            "ca_file": self.pki.ca,
            "cert_file": self.pki.client_cert,
            "key_file": self.pki.client_key,
            "server_name": SERVER_NAME,
        }
        files.update(overrides)
        return ChannelSecurity.from_files(**files)


def verdict(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def suite(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSuite]:
    root = tmp_path_factory.mktemp("tls")
    pki = make_pki(root / "pki")
    ports = {svc.name: free_port() for svc in SERVICES}
    metrics = {svc.name: free_port() for svc in GRPC}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")}
    env.update(
        VERDICT_DATA_DIR=str(root / "data"),
        VERDICT_DATABASE_URL=settings.require_database_url(),
        VERDICT_REDIS_URL=settings.require_redis_url(),
        VERDICT_REDIS_NAMESPACE=f"{settings.redis_namespace}-tls",
        VERDICT_GRACE_PERIOD_S="2",
        VERDICT_ANALYSIS_INTERVAL="3600",
        VERDICT_INGEST_TARGET=f"127.0.0.1:{ports['ingest']}",
        VERDICT_ASSIGNMENT_TARGET=f"127.0.0.1:{ports['assignment']}",
        VERDICT_TLS_CERT_FILE=str(pki.service_cert),
        VERDICT_TLS_KEY_FILE=str(pki.service_key),
        VERDICT_TLS_CLIENT_CA_FILE=str(pki.ca),
        VERDICT_TLS_CA_FILE=str(pki.ca),
        VERDICT_TLS_SERVER_NAME=SERVER_NAME,
    )
    for svc in SERVICES:
        env[f"VERDICT_{svc.name.upper()}_PORT"] = str(ports[svc.name])
        env[f"VERDICT_{svc.name.upper()}_METRICS_PORT"] = str(metrics.get(svc.name, 0))
    try:
        up = verdict(env, "up")  # exits 0 only when every service answered its health check
        for svc in GRPC:
            assert f"grpcs://127.0.0.1:{ports[svc.name]}" in up.stdout
        key = (root / "data" / "dev-admin-key").read_text().strip()
        yield TlsSuite(pki, ports, metrics, key, root / "data")
    finally:
        verdict(env, "down", check=False)


def buf_curl(suite: TlsSuite, port: int, method: str, body: object) -> dict[str, Any]:
    """The README tour's `vc`, over TLS: the CA, the operator's certificate, the server name."""
    done = subprocess.run(
        [
            BUF, "curl", "--protocol", "grpc", "--cacert", str(suite.pki.ca),
            "--cert", str(suite.pki.client_cert), "--key", str(suite.pki.client_key),
            "--servername", SERVER_NAME, "-H", f"authorization: Bearer {suite.key}",
            "-d", json.dumps(body), f"https://127.0.0.1:{port}/{method}",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"{method}: {done.stderr}"
    reply: dict[str, Any] = json.loads(done.stdout or "{}")
    return reply


def test_the_readme_tour_runs_over_mutual_tls(suite: TlsSuite, settings: Settings) -> None:
    a, i, r = (suite.ports[name] for name in ("assignment", "ingest", "analysis"))
    key = f"faq-{secrets.token_hex(3)}"
    buf_curl(suite, a, "verdict.v1.ExperimentService/CreateMetric", {"metric": {
        "key": f"{key}-thumbs", "type": "METRIC_TYPE_BINOMIAL",
        "source": {"event_name": "feedback.thumbs_up"}}})  # fmt: skip
    buf_curl(suite, a, "verdict.v1.ExperimentService/CreateExperiment", {"experiment": {
        "key": key, "name": "Cheaper FAQ model", "coverage": 1,
        "targeting": {"country": {"$in": ["FR", "DE"]}},
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "gpt-4o"}},
            {"key": "mini", "weight": 0.5, "payload": {"model": "gpt-4o-mini"}}],
        "metrics": [{"metric_key": f"{key}-thumbs", "role": "METRIC_ROLE_PRIMARY"}]}})  # fmt: skip
    buf_curl(suite, a, "verdict.v1.ExperimentService/StartExperiment", {"key": key})

    def assigned() -> dict[str, Any] | None:
        request = {"unit_id": "user-42", "attributes": {"country": "FR"}, "experiment_keys": [key]}
        reply = buf_curl(suite, a, "verdict.v1.AssignmentService/Assign", request)
        result: dict[str, Any] = reply["assignments"][0]
        return result if result["reason"] == "ASSIGNMENT_REASON_ASSIGNED" else None

    variant = eventually(assigned)["variantKey"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tracked = buf_curl(suite, i, "verdict.v1.IngestService/TrackEvents", {"request_id": "r1",
        "events": [{"event_id": str(uuid.uuid4()), "unit_id": "user-42",
                    "name": "feedback.thumbs_up", "timestamp": now}]})  # fmt: skip
    assert tracked["accepted"] == 1

    # The exposure went assignment → ingest over mTLS; analysis reads it back.
    def analysed() -> dict[str, Any] | None:
        buf_curl(suite, r, "verdict.v1.AnalysisService/RunAnalysis", {"experiment_key": key})
        got = buf_curl(suite, r, "verdict.v1.AnalysisService/GetResults", {"experiment_key": key})
        return got if got["snapshot"].get("units", {}).get(variant) == "1" else None

    results = eventually(analysed)
    assert results["snapshot"]["experimentKey"] == key
    sized = buf_curl(suite, r, "verdict.v1.AnalysisService/CalculateSampleSize", {
        "metric_type": "SAMPLE_SIZE_METRIC_TYPE_PROPORTION", "baseline_mean": 0.34,
        "minimum_detectable_effect": 0.01, "daily_units": 20000})  # fmt: skip
    assert int(sized["unitsPerVariant"]) > 0


async def _expose(settings: Settings, key: str, counts: dict[str, int]) -> None:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        rows = [(key, f"{key}-{v}-{n}", v, when) for v, c in counts.items() for n in range(c)]
        await conn.copy_records_to_table(
            "exposures", records=rows,
            columns=["experiment_key", "unit_id", "variant_key", "exposed_at"],
        )  # fmt: skip
    finally:
        await conn.close()


def test_a_stopping_rule_stops_through_experiment_service_over_mutual_tls(
    suite: TlsSuite, settings: Settings
) -> None:
    key = f"tls-srm-{secrets.token_hex(3)}"
    spec = experiment_pb2.Experiment(key=key, name=key, coverage=1.0)
    spec.variants.add(key="control", weight=0.5, is_control=True)
    spec.variants.add(key="treatment", weight=0.5)
    spec.stopping_rules.srm_action = experiment_pb2.SRM_ACTION_STOP
    admin = (("authorization", f"Bearer {suite.key}"),)
    with sync_channel(suite.target("assignment"), suite.security()) as channel:
        experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
        experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=admin
        )
        experiments.StartExperiment(experiment_pb2.StartExperimentRequest(key=key), metadata=admin)
        asyncio.run(_expose(settings, key, {"control": 1_000, "treatment": 1_400}))
        buf_curl(suite, suite.ports["analysis"], "verdict.v1.AnalysisService/RunAnalysis",
                 {"experiment_key": key})  # fmt: skip
        stopped = experiments.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=key), metadata=admin
        ).experiment
    assert stopped.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED
    assert stopped.decision.stopped_by == "svc-analysis"  # analysis's own key, over mTLS


def test_the_python_client_connects_with_channel_security(suite: TlsSuite) -> None:
    tracker = Tracker(TrackerOptions(suite.target("ingest"), suite.key, security=suite.security()))
    tracker.track("user-7", "feedback.thumbs_up")
    assert tracker.close().sent == 1

    async def evaluate() -> int:
        async with LocalEvaluator(
            suite.target("assignment"), suite.key, security=suite.security()
        ) as local:
            return local.version

    assert asyncio.run(evaluate()) > 0


def health(target: str, channel: grpc.Channel) -> int:
    with channel:
        return int(
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(), timeout=5)
            .status
        )


@pytest.mark.parametrize("service", ["assignment", "ingest", "analysis"])
def test_clients_without_the_right_credentials_are_refused(suite: TlsSuite, service: str) -> None:
    target = suite.target(service)
    assert health(target, sync_channel(target, suite.security())) == 1  # SERVING
    refused = {
        "plaintext": grpc.insecure_channel(target),
        "no client certificate": sync_channel(
            target, suite.security(cert_file=None, key_file=None)
        ),
        "another CA's certificate": sync_channel(
            target, suite.security(cert_file=suite.pki.rogue_cert, key_file=suite.pki.rogue_key)
        ),
        "another server name": sync_channel(target, suite.security(server_name="other.test")),
    }
    for what, channel in refused.items():
        with pytest.raises(grpc.RpcError) as failure:
            health(target, channel)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, what


def scrape_tls(suite: TlsSuite, port: int, client_cert: bool = True) -> str:
    """GET /metrics over TLS, checking the certificate against the services' name."""
    context = ssl.create_default_context(cafile=str(suite.pki.ca))
    if client_cert:
        context.load_cert_chain(str(suite.pki.client_cert), str(suite.pki.client_key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        tls.sendall(b"GET /metrics HTTP/1.0\r\nHost: verdict.test\r\n\r\n")
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_metrics_are_served_over_tls_to_clients_with_a_certificate(suite: TlsSuite) -> None:
    for service, port in suite.metrics.items():
        page = scrape_tls(suite, port)
        assert page.startswith("HTTP/1.0 200"), page[:200]
        assert f'service_name="verdict-{service}"' in page
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            scrape_tls(suite, port, client_cert=False)
