"""The image's health check (`python -m verdict_platform.healthcheck`) against real processes:
0 for a service that serves, 1 for none or a console whose /healthz fails."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from support.processes import RunningService, free_port, service_env
from verdict_platform.settings import Settings


def healthcheck(settings: Settings, component: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verdict_platform.healthcheck"] + ([component] if component else []),
        env=service_env(settings, env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serving_service_is_healthy_and_a_dead_port_is_not(
    settings: Settings, start_service: Callable[..., RunningService]
) -> None:
    ingest = start_service("verdict_ingest", "VERDICT_INGEST_PORT")
    ok = healthcheck(settings, "ingest", VERDICT_INGEST_PORT=str(ingest.port))
    assert ok.returncode == 0, ok.stderr
    # The component may come from the image's VERDICT_COMPONENT instead of the argument.
    by_env = healthcheck(
        settings, "", VERDICT_COMPONENT="ingest", VERDICT_INGEST_PORT=str(ingest.port)
    )
    assert by_env.returncode == 0, by_env.stderr
    dead = healthcheck(settings, "assignment", VERDICT_ASSIGNMENT_PORT=str(free_port()))
    assert dead.returncode == 1
    assert "UNAVAILABLE" in dead.stderr


def test_unknown_component_is_a_usage_error(settings: Settings) -> None:
    done = healthcheck(settings, "billing")
    assert done.returncode == 2
    assert "assignment" in done.stderr


class _Console(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def console() -> Iterator[tuple[int, type[_Console]]]:
    handler = type("Console", (_Console,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_console_health_is_its_healthz_page(
    settings: Settings, console: tuple[int, type[_Console]]
) -> None:
    port, handler = console
    assert healthcheck(settings, "dashboard", VERDICT_DASHBOARD_PORT=str(port)).returncode == 0
    handler.status = 503
    failing = healthcheck(settings, "dashboard", VERDICT_DASHBOARD_PORT=str(port))
    assert failing.returncode == 1
    assert "503" in failing.stderr
