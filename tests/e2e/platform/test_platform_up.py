"""`verdict up` / `down` on the embedded default, in a private data folder: servers start, every
installed service reports SERVING, the endpoints and an admin key are printed, and the data (the
key included) persists to the next `up`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.processes import free_port
from verdict_platform.launcher import SERVICES


def verdict(data_dir: Path, ports: dict[str, int], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")}
    env["VERDICT_DATA_DIR"] = str(data_dir)
    env["VERDICT_GRACE_PERIOD_S"] = "2"
    for svc in SERVICES:
        env[f"VERDICT_{svc.name.upper()}_PORT"] = str(ports[svc.name])
    env["VERDICT_INGEST_TARGET"] = f"127.0.0.1:{ports['ingest']}"
    env["VERDICT_ASSIGNMENT_TARGET"] = f"127.0.0.1:{ports['assignment']}"
    return subprocess.run(
        [sys.executable, "-m", "verdict_platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
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
        assert re.search(r"^dashboard\s+running \(pid \d+\)$", status.stdout, re.M), status.stdout
        listed = verdict(data_dir, ports, "keys", "list")
        assert "dev-admin\tadmin" in listed.stdout

        down = verdict(data_dir, ports, "down")
        assert down.returncode == 0, down.stderr
        assert "stopped embedded PostgreSQL" in down.stdout
        assert "stopped embedded Redis" in down.stdout

        second = verdict(data_dir, ports, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert key.group(1) in second.stdout  # same database: the key survived
    finally:
        verdict(data_dir, ports, "down")
