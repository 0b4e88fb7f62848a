"""`verdict up` and the metrics ports: each worker process serves its own `/metrics`, and a
taken metrics port stops `up` before anything starts, naming its variable."""

from __future__ import annotations

import socket

from support.processes import free_port
from verdict_platform.launcher import SERVICES, _taken_ports
from verdict_platform.settings import load_settings

BY_NAME = {svc.name: svc for svc in SERVICES}


def test_each_worker_gets_its_own_metrics_port() -> None:
    settings = load_settings({"VERDICT_WORKERS": "3"})
    assert BY_NAME["assignment"].metrics_ports(settings) == [9464, 9474, 9484]
    assert BY_NAME["analysis"].metrics_ports(settings) == [9466, 9476, 9486]
    assert BY_NAME["dashboard"].metrics_ports(settings) == []
    off = load_settings({"VERDICT_INGEST_METRICS_PORT": "0"})
    assert BY_NAME["ingest"].metrics_ports(off) == []


def test_a_taken_metrics_port_is_named() -> None:
    port = free_port()
    settings = load_settings(
        {"VERDICT_INGEST_PORT": str(free_port()), "VERDICT_INGEST_METRICS_PORT": str(port)}
    )
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        [problem] = _taken_ports(settings, [BY_NAME["ingest"]])
    assert f"port {port} (ingest)" in problem and "VERDICT_INGEST_METRICS_PORT" in problem
