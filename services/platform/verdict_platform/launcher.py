"""`verdict up` / `down` / `status`: run the whole platform on one machine.

`up` resolves the servers (embedded PostgreSQL and Redis under the data folder when no URL is
configured), applies migrations, makes sure a development admin key exists, starts every service
that is installed as a background process on its default port, waits until each reports SERVING,
and prints the endpoints and the key. `down` stops the services, then the embedded servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from verdict_platform.db import connect
from verdict_platform.embedded import resolve_servers, stop_postgres, stop_redis
from verdict_platform.keys import KeyStore, hash_key
from verdict_platform.migrator import migrate
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

DEV_KEY_NAME = "dev-admin"


@dataclasses.dataclass(frozen=True)
class ServiceProcess:
    """A service `up` can start."""

    name: str
    module: str
    port_field: str
    grpc: bool = True

    def port(self, settings: Settings) -> int:
        """The port the service listens on."""
        value: int = getattr(settings, self.port_field)
        return value

    def installed(self) -> bool:
        """True when the service's code is present (services land one by one)."""
        try:
            return importlib.util.find_spec(f"{self.module}.__main__") is not None
        except ModuleNotFoundError:
            return False


SERVICES = (
    ServiceProcess("assignment", "verdict_assignment", "assignment_port"),
    ServiceProcess("ingest", "verdict_ingest", "ingest_port"),
    ServiceProcess("analysis", "verdict_analysis", "analysis_port"),
    ServiceProcess("dashboard", "verdict_dashboard", "dashboard_port", grpc=False),
)


def _run_dir(settings: Settings) -> Path:
    path = settings.data_dir.resolve() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


async def _prepare(settings: Settings) -> str:
    """Migrates and returns the development admin key (created once, kept in the data folder)."""
    import asyncpg

    conn = await connect(settings)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    key_file = settings.data_dir.resolve() / "dev-admin-key"
    pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
    try:
        store = KeyStore(pool)
        if key_file.exists():
            key = key_file.read_text().strip()
            if hash_key(key) in await store.active_hashes():
                return key
            await pool.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
                DEV_KEY_NAME,
            )
        key = await store.create(DEV_KEY_NAME, Role.ADMIN)
    finally:
        await pool.close()
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def _healthy(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
        time.sleep(0.2)
    return False


def _http_healthy(port: int, deadline: float) -> bool:
    """True once GET /healthz answers 200 (services served over HTTP: the console)."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def up(settings: Settings) -> int:
    """Starts everything; prints endpoints and the development admin key."""
    settings = resolve_servers(settings)
    key = asyncio.run(_prepare(settings))
    env = dict(os.environ)
    env["VERDICT_DATABASE_URL"] = settings.require_database_url()
    env["VERDICT_REDIS_URL"] = settings.require_redis_url()
    env.setdefault("VERDICT_SERVICE_API_KEY", key)
    # The console reads results from the analysis service on the port started here.
    env.setdefault("VERDICT_ANALYSIS_TARGET", f"127.0.0.1:{settings.analysis_port}")
    env["VERDICT_DATA_DIR"] = str(settings.data_dir.resolve())
    logs = settings.data_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for svc in SERVICES:
        if not svc.installed():
            continue
        pid_file = _run_dir(settings) / f"{svc.name}.pid"
        if _alive(pid_file) is None:
            with open(logs / f"{svc.name}.log", "ab") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", svc.module],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            pid_file.write_text(str(proc.pid))
        started.append(svc)
    deadline = time.monotonic() + 60
    failed = [
        s.name
        for s in started
        if not (_healthy if s.grpc else _http_healthy)(s.port(settings), deadline)
    ]
    print("Verdict is up.")
    print(f"  PostgreSQL  {settings.database_url}")
    print(f"  Redis       {settings.redis_url}")
    for svc in started:
        scheme = "grpc" if svc.grpc else "http"
        print(f"  {svc.name:<11} {scheme}://{settings.host}:{svc.port(settings)}")
    if not started:
        print("  (no service is installed yet)")
    print(f"  admin key   {key}")
    print(f"  logs        {logs}")
    if failed:
        print(f"not healthy within 60 s: {', '.join(failed)} (see the logs)", file=sys.stderr)
        return 1
    return 0


def down(settings: Settings) -> int:
    """Stops the services `up` started, then the embedded servers."""
    for svc in SERVICES:
        pid_file = _run_dir(settings) / f"{svc.name}.pid"
        pid = _alive(pid_file)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + settings.grace_period_s + 5
            while _alive(pid_file) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"stopped {svc.name}")
        pid_file.unlink(missing_ok=True)
    if settings.database_url is None and stop_postgres(settings.data_dir):
        print("stopped embedded PostgreSQL")
    if settings.redis_url is None and stop_redis(settings.data_dir):
        print("stopped embedded Redis")
    return 0


def status(settings: Settings) -> int:
    """Prints which services run."""
    for svc in SERVICES:
        pid = _alive(_run_dir(settings) / f"{svc.name}.pid")
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"{svc.name:<11} {state}")
    return 0


def run(command: str, settings: Settings) -> int:
    """Dispatches `up`, `down` or `status`."""
    return {"up": up, "down": down, "status": status}[command](settings)
