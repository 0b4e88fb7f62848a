"""The three services as processes exporting spans to a real OTLP receiver and serving
`/metrics`, with the keys, receivers and helpers the telemetry e2e tests share."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from support.otlp_receiver import OtlpReceiver, ReceivedSpan
from support.processes import RunningService, free_port, start_service_process
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings


class Webhook:
    """An HTTP receiver that keeps each POST's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def create_key(settings: Settings, role: Role) -> str:
    """A new API key with `role`, announced to running services."""

    async def create() -> str:
        pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
        client = redis_conn.connect_redis(settings)
        try:
            key = await KeyStore(pool).create(f"tel-{role.value}-{secrets.token_hex(4)}", role)
            await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
            return key
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(create())


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from a real scrape of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """A sample's value (0 when absent: a counter not incremented yet)."""
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Suite:
    receiver: OtlpReceiver
    webhook: Webhook
    assignment: RunningService
    ingest: RunningService
    analysis: RunningService
    metrics_ports: dict[str, int]
    admin: tuple[tuple[str, str], ...]
    admin_key: str

    def spans(self, trace_id: str) -> list[ReceivedSpan]:
        return self.receiver.spans(trace_id)

    def stop(self) -> None:
        for service in (self.analysis, self.assignment, self.ingest):
            service.stop()
        self.receiver.close()
        self.webhook.close()


def start_suite(settings: Settings) -> Suite:
    """The receivers, the keys, and the three services tracing every new call (ratio 1)."""
    receiver, webhook = OtlpReceiver(), Webhook()
    admin_key = create_key(settings, Role.ADMIN)
    ports = {name: free_port() for name in ("assignment", "ingest", "analysis")}
    tracing = {
        "VERDICT_TRACE_EXPORTER": "otlp",
        "VERDICT_OTLP_ENDPOINT": receiver.endpoint,
        "VERDICT_TRACE_SAMPLE_RATIO": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s (the SDK's default is 5 s)
        "VERDICT_LOG_FORMAT": "json",
    }
    ingest = start_service_process(
        settings,
        "verdict_ingest",
        "VERDICT_INGEST_PORT",
        {**tracing, "VERDICT_INGEST_METRICS_PORT": str(ports["ingest"])},
    )
    assignment = start_service_process(
        settings,
        "verdict_assignment",
        "VERDICT_ASSIGNMENT_PORT",
        {
            **tracing,
            "VERDICT_ASSIGNMENT_METRICS_PORT": str(ports["assignment"]),
            "VERDICT_INGEST_TARGET": ingest.target,
            "VERDICT_SERVICE_API_KEY": create_key(settings, Role.INGEST),
        },
    )
    analysis = start_service_process(
        settings,
        "verdict_analysis",
        "VERDICT_ANALYSIS_PORT",
        {
            **tracing,
            "VERDICT_ANALYSIS_METRICS_PORT": str(ports["analysis"]),
            "VERDICT_ASSIGNMENT_TARGET": assignment.target,
            "VERDICT_SERVICE_API_KEY": create_key(settings, Role.ANALYSIS),
            "VERDICT_ALERT_WEBHOOK_URL": webhook.url,
            "VERDICT_ANALYSIS_INTERVAL": "3600",  # runs are the tests' RunAnalysis calls
        },
    )
    admin = (("authorization", f"Bearer {admin_key}"),)
    return Suite(receiver, webhook, assignment, ingest, analysis, ports, admin, admin_key)
