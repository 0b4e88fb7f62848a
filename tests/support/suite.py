"""The whole platform as real processes on free ports: assignment, ingest, analysis (short
analysis interval) and the console. Used by the console's browser tests and its benchmark."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import urllib.request
from dataclasses import dataclass, field

import asyncpg

from support.eventually import eventually
from support.processes import RunningService, free_port, start_service_process
from verdict_platform import redis_conn
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings


def create_key(settings: Settings, role: Role, name: str | None = None) -> tuple[str, str]:
    """A new key with `role`, announced to running services: (name, secret)."""

    async def create() -> tuple[str, str]:
        pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
        client = redis_conn.connect_redis(settings)
        try:
            key_name = name or f"{role.value}-{secrets.token_hex(3)}"
            secret = await KeyStore(pool).create(key_name, role)
            await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"new")
            return key_name, secret
        finally:
            await client.aclose()
            await pool.close()

    # In a thread of its own: the caller's thread may run an event loop already (Playwright's
    # sync API keeps one running while a browser is open).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create()).result()


def wait_http(url: str, service: RunningService, timeout: float = 30.0) -> None:
    """Waits until `url` answers 200 (the process must stay alive meanwhile)."""

    def answers() -> bool:
        if service.proc.poll() is not None:
            raise RuntimeError(f"exited with {service.proc.returncode}:\n{service.log()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    eventually(answers, timeout=timeout, interval=0.1, describe=service.log)


@dataclass
class Suite:
    """The running platform and the keys a test uses."""

    settings: Settings
    assignment: RunningService
    ingest: RunningService
    analysis: RunningService
    dashboard: RunningService
    admin_key: str
    admin_name: str
    assign_key: str
    ingest_key: str
    analysis_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The console's base URL."""
        return f"http://127.0.0.1:{self.dashboard.port}"

    def restart_analysis(self) -> None:
        """Starts the analysis service again on its port (after a test stopped it)."""
        self.analysis = start_service_process(
            self.settings,
            "verdict_analysis",
            "VERDICT_ANALYSIS_PORT",
            self.analysis_env,
            port=self.analysis.port,
        )

    def stop(self) -> None:
        """Stops every process (the console first)."""
        for service in (self.dashboard, self.analysis, self.assignment, self.ingest):
            service.stop()


def start_suite(settings: Settings, analysis_interval_s: float = 1.0) -> Suite:
    """Starts the four processes; the console last, once the services serve."""
    ingest_key = create_key(settings, Role.INGEST)[1]
    assign_key = create_key(settings, Role.ASSIGN)[1]
    admin_name, admin_key = create_key(settings, Role.ADMIN)
    analysis_name_key = create_key(settings, Role.ADMIN, f"analysis-{secrets.token_hex(3)}")[1]
    started: list[RunningService] = []
    try:
        ingest = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
        started.append(ingest)
        assignment = start_service_process(
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": ingest_key},
        )
        started.append(assignment)
        analysis_env = {
            "VERDICT_ASSIGNMENT_TARGET": assignment.target,
            "VERDICT_SERVICE_API_KEY": analysis_name_key,
            "VERDICT_ANALYSIS_INTERVAL": str(analysis_interval_s),
        }
        analysis = start_service_process(
            settings, "verdict_analysis", "VERDICT_ANALYSIS_PORT", analysis_env
        )
        started.append(analysis)
        port = free_port()
        dashboard = start_service_process(
            settings,
            "verdict_dashboard",
            "VERDICT_DASHBOARD_PORT",
            {
                "VERDICT_ASSIGNMENT_TARGET": assignment.target,
                "VERDICT_ANALYSIS_TARGET": analysis.target,
            },
            port=port,
            wait=False,
        )
        started.append(dashboard)
        wait_http(f"http://127.0.0.1:{port}/healthz", dashboard)
    except BaseException:
        for service in started:
            service.kill()
        raise
    return Suite(
        settings,
        assignment,
        ingest,
        analysis,
        dashboard,
        admin_key,
        admin_name,
        assign_key,
        ingest_key,
        analysis_env,
    )
