"""`verdict up` / `down` on the embedded default, in a private data folder: servers start, every
installed service reports SERVING, the endpoints and an admin key are printed, and the data (the
key included) persists to the next `up`."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.eventually import eventually
from support.processes import METRICS_OFF, free_port
from verdict.v1 import (
    assignment_pb2,
    assignment_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
)
from verdict_platform.launcher import SERVICES
from verdict_platform.settings import Settings


def verdict(
    data_dir: Path,
    ports: dict[str, int],
    *args: str,
    cwd: Path | None = None,
    targets: bool = True,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")}
    env["VERDICT_DATA_DIR"] = str(data_dir)
    env.update(METRICS_OFF)
    env.update(extra)
    env["VERDICT_GRACE_PERIOD_S"] = "2"
    for svc in SERVICES:
        env[f"VERDICT_{svc.name.upper()}_PORT"] = str(ports[svc.name])
    if targets:
        env["VERDICT_INGEST_TARGET"] = f"127.0.0.1:{ports['ingest']}"
        env["VERDICT_ASSIGNMENT_TARGET"] = f"127.0.0.1:{ports['assignment']}"
    return subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
    )


def test_up_and_down_on_the_embedded_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {svc.name: free_port() for svc in SERVICES}
    try:
        first = verdict(data_dir, ports, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        key = re.search(r"admin key\s+(vdk_\S+)", first.stdout)
        assert key is not None, first.stdout
        assert "PostgreSQL  postgresql://" in first.stdout
        assert "Redis       unix://" in first.stdout
        for svc in SERVICES:
            if svc.installed() and svc.grpc:
                assert f"grpc://127.0.0.1:{ports[svc.name]}" in first.stdout
                with grpc.insecure_channel(f"127.0.0.1:{ports[svc.name]}") as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING
        dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        assert dashboard in first.stdout
        with urllib.request.urlopen(f"{dashboard}/healthz", timeout=5) as reply:
            assert reply.status == 200
        status = verdict(data_dir, ports, "status")
        assert re.search(
            rf"^dashboard\s+running \(pid \d+\) on port {ports['dashboard']}$", status.stdout, re.M
        ), status.stdout
        listed = verdict(data_dir, ports, "keys", "list")
        assert "dev-admin\tadmin" in listed.stdout
        # each service calls the others under its own identity, with the least role it needs
        assert "svc-analysis\tanalysis" in listed.stdout
        assert "svc-assignment\tingest" in listed.stdout

        down = verdict(data_dir, ports, "down")
        assert down.returncode == 0, down.stderr
        assert "stopped embedded PostgreSQL" in down.stdout
        assert "stopped embedded Redis" in down.stdout

        second = verdict(data_dir, ports, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert key.group(1) in second.stdout  # same database: the key survived
    finally:
        verdict(data_dir, ports, "down")


def test_up_refuses_to_start_when_a_port_is_taken_and_names_the_holder(tmp_path: Path) -> None:
    ports = {svc.name: free_port() for svc in SERVICES}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["ingest"]))
        squatter.listen()
        result = verdict(tmp_path / "data", ports, "up")
    assert result.returncode != 0
    assert f"port {ports['ingest']} (ingest) is taken by pid {os.getpid()}" in result.stderr
    assert "VERDICT_INGEST_PORT" in result.stderr
    assert "Verdict is up" not in result.stdout
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_a_command_outside_the_project_never_creates_a_database_there(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")}
    result = subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", "keys", "list"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no Verdict database here" in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_up_with_configured_servers_creates_its_data_folder_and_reruns_cleanly(
    tmp_path: Path, settings: Settings
) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    ports = {svc.name: free_port() for svc in SERVICES}
    servers = {
        "VERDICT_DATABASE_URL": settings.require_database_url(),
        "VERDICT_REDIS_URL": settings.require_redis_url(),
        "VERDICT_REDIS_NAMESPACE": settings.redis_namespace + "-up",
    }
    try:
        first = verdict(data_dir, ports, "up", **servers)
        assert first.returncode == 0, first.stdout + first.stderr
        key = re.search(r"admin key\s+(vdk_\S+)", first.stdout)
        assert key is not None
        assert (data_dir / "dev-admin-key").read_text().strip() == key.group(1)
        verdict(data_dir, ports, "down", **servers)
        second = verdict(data_dir, ports, "up", **servers)
        assert second.returncode == 0, second.stdout + second.stderr
        assert key.group(1) in second.stdout  # reused, not re-created
        verdict(data_dir, ports, "down", **servers)
        (data_dir / "dev-admin-key").unlink()  # a lost key file is repaired by rotation
        third = verdict(data_dir, ports, "up", **servers)
        assert third.returncode == 0, third.stdout + third.stderr
        assert key.group(1) not in third.stdout
    finally:
        verdict(data_dir, ports, "down", **servers)


def test_workers_processes_share_each_grpc_port(tmp_path: Path, settings: Settings) -> None:
    data_dir = tmp_path / "data"
    ports = {svc.name: free_port() for svc in SERVICES}
    servers = {
        "VERDICT_DATABASE_URL": settings.require_database_url(),
        "VERDICT_REDIS_URL": settings.require_redis_url(),
        "VERDICT_REDIS_NAMESPACE": settings.redis_namespace + "-workers",
        "VERDICT_WORKERS": "2",
    }
    try:
        up = verdict(data_dir, ports, "up", **servers)
        assert up.returncode == 0, up.stdout + up.stderr
        status = verdict(data_dir, ports, "status", **servers)
        for svc in SERVICES:
            if svc.installed() and svc.grpc:
                line = next(ln for ln in status.stdout.splitlines() if ln.startswith(svc.name))
                pids = re.search(r"pid ([\d, ]+)\)", line)
                assert pids is not None and len(pids.group(1).split(", ")) == 2, line
                assert f"on port {ports[svc.name]}" in line
    finally:
        down = verdict(data_dir, ports, "down", **servers)
    assert down.returncode == 0
    after = verdict(data_dir, ports, "status", **servers)
    assert "running" not in after.stdout


def _exposed_units(database_url: str, experiment_key: str) -> list[str]:
    async def fetch() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT unit_id FROM exposures WHERE experiment_key = $1", experiment_key
            )
            return [row["unit_id"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_up_on_other_ports_sends_exposures_to_the_ingest_it_started(
    tmp_path: Path, settings: Settings
) -> None:
    """Only the ports moved (VERDICT_*_PORT, as a second platform on one machine does), no
    VERDICT_*_TARGET: the assignment service `up` starts must send its exposures to the ingest
    `up` started, not to the default port 50052, where they were dropped (or went to another
    platform) and the unit vanished from the analysis."""
    data_dir = tmp_path / "data"
    ports = {svc.name: free_port() for svc in SERVICES}
    servers = {
        "VERDICT_DATABASE_URL": settings.require_database_url(),
        "VERDICT_REDIS_URL": settings.require_redis_url(),
        "VERDICT_REDIS_NAMESPACE": settings.redis_namespace + "-up-ports",
    }
    try:
        up = verdict(data_dir, ports, "up", targets=False, **servers)
        assert up.returncode == 0, up.stdout + up.stderr
        found = re.search(r"admin key\s+(vdk_\S+)", up.stdout)
        assert found is not None, up.stdout
        metadata = (("authorization", f"Bearer {found.group(1)}"),)
        key = f"up-ports-{secrets.token_hex(3)}"
        experiment = experiment_pb2.Experiment(key=key, name="ports")
        experiment.variants.add(key="control", is_control=True)
        experiment.variants.add(key="b")
        with grpc.insecure_channel(f"127.0.0.1:{ports['assignment']}") as channel:
            experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
            experiments.CreateExperiment(
                experiment_pb2.CreateExperimentRequest(experiment=experiment), metadata=metadata
            )
            started = experiments.StartExperiment(
                experiment_pb2.StartExperimentRequest(key=key), metadata=metadata
            )
            reply = assignment_pb2_grpc.AssignmentServiceStub(channel).Assign(
                assignment_pb2.AssignRequest(
                    unit_id="unit-1",
                    experiment_keys=[key],
                    min_config_version=started.config_version,
                ),
                metadata=metadata,
            )
        assert reply.assignments[0].in_experiment
        database_url = settings.require_database_url()
        eventually(
            lambda: _exposed_units(database_url, key) == ["unit-1"],
            timeout=15,
            describe=lambda: (data_dir / "logs" / "assignment.log").read_text()[-2000:],
        )
    finally:
        verdict(data_dir, ports, "down", **servers)
