"""`verdict up` / `down` / `status`: run the whole platform on one machine.

`up` resolves the servers (embedded PostgreSQL and Redis under the data folder when no URL is
configured), applies migrations, makes sure a development admin key exists, starts every service
that is installed as a background process on its default port, waits until each reports SERVING,
and prints the endpoints and the key. `down` stops the services, then the embedded servers.
Health checks use the platform's channel security (TLS, mTLS and the server name, as every
internal client does). With `VERDICT_WORKERS` > 1, worker k of a service serves `/metrics` on
its metrics port + 10·k (each process has its own counters).
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

from verdict.channels import PLAINTEXT, ChannelSecurity, sync_channel
from verdict_platform.db import connect
from verdict_platform.dev_keys import DEV_ADMIN, SERVICE_IDENTITIES, ensure_key
from verdict_platform.embedded import resolve_servers, stop_postgres, stop_redis
from verdict_platform.keys import KeyStore
from verdict_platform.migrator import migrate
from verdict_platform.port_check import port_holder, port_is_free
from verdict_platform.settings import Settings


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

    def metrics_ports(self, settings: Settings) -> list[int]:
        """The `/metrics` port of each worker (none when metrics are off or not a gRPC
        service)."""
        port = settings.metrics_port(self.name)
        if not self.grpc or port == 0:
            return []
        return [port + METRICS_WORKER_STRIDE * k for k in range(settings.workers)]

    def installed(self) -> bool:
        """True when the service's code is present (services land one by one)."""
        try:
            return importlib.util.find_spec(f"{self.module}.__main__") is not None
        except ModuleNotFoundError:
            return False


METRICS_WORKER_STRIDE = 10
"""Worker k of a service serves `/metrics` on its metrics port + 10·k."""

SERVICES = (
    ServiceProcess("assignment", "verdict_assignment", "assignment_port"),
    ServiceProcess("ingest", "verdict_ingest", "ingest_port"),
    ServiceProcess("analysis", "verdict_analysis", "analysis_port"),
    ServiceProcess("dashboard", "verdict_dashboard", "dashboard_port", grpc=False),
)


def _run_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "run"


def _pids(pid_file: Path) -> list[int]:
    """The live processes among those a pid file lists (one per worker, a line each)."""
    try:
        listed = [int(line) for line in pid_file.read_text().split()]
    except (OSError, ValueError):
        return []
    alive = []
    for pid in listed:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        alive.append(pid)
    return alive


def _alive(pid_file: Path) -> int | None:
    """The first live process a pid file lists, or None."""
    pids = _pids(pid_file)
    return pids[0] if pids else None


async def _prepare(settings: Settings) -> dict[str, str]:
    """Migrates; returns the development admin key ("") and each service identity's key (by
    service name), created once and kept in the data folder."""
    import asyncpg

    conn = await connect(settings)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
    try:
        store = KeyStore(pool)
        keys = {"": await ensure_key(store, data_dir, DEV_ADMIN)}
        for service, identity in SERVICE_IDENTITIES.items():
            keys[service] = await ensure_key(store, data_dir, identity)
    finally:
        await pool.close()
    return keys


def _healthy(
    port: int,
    deadline: float,
    proc: subprocess.Popen[bytes] | None = None,
    security: ChannelSecurity = PLAINTEXT,
) -> bool:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False  # our process exited: whatever answers on the port is not it
        with sync_channel(f"127.0.0.1:{port}", security) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return proc is None or proc.poll() is None
            except grpc.RpcError:
                pass
        time.sleep(0.2)
    return False


def _taken_ports(settings: Settings, services: list[ServiceProcess]) -> list[str]:
    """A line per port that a service to be started cannot bind, naming what holds it."""
    problems = []
    for svc in services:
        wanted = [(svc.port(settings), f"VERDICT_{svc.name.upper()}_PORT")]
        variable = f"VERDICT_{svc.name.upper()}_METRICS_PORT"
        wanted += [(port, variable) for port in svc.metrics_ports(settings)]
        for port, variable in wanted:
            if not port_is_free(settings.host, port):
                problems.append(
                    f"port {port} ({svc.name}) is taken by {port_holder(port)}; stop it, or set "
                    f"{variable} to a free port"
                )
    return problems


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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
    """Starts everything; prints endpoints and the development admin key. Exit status 1, with
    the reason, when a port is taken or a service does not report SERVING."""
    installed = [svc for svc in SERVICES if svc.installed()]
    run_dir = _run_dir(settings)
    to_start = [svc for svc in installed if _alive(run_dir / f"{svc.name}.pid") is None]
    taken = _taken_ports(settings, to_start)
    if taken:
        for line in taken:
            print(f"error: {line}", file=sys.stderr)
        print("Verdict did not start.", file=sys.stderr)
        return 1
    settings = resolve_servers(settings)
    keys = asyncio.run(_prepare(settings))
    env = dict(os.environ)
    env["VERDICT_DATABASE_URL"] = settings.require_database_url()
    env["VERDICT_REDIS_URL"] = settings.require_redis_url()
    # The services call each other on the ports started here (assignment sends exposures to
    # ingest, analysis stops experiments through assignment, the console reads both), not on
    # the default ports, where another platform may listen when these were moved.
    env.setdefault("VERDICT_INGEST_TARGET", f"127.0.0.1:{settings.ingest_port}")
    env.setdefault("VERDICT_ASSIGNMENT_TARGET", f"127.0.0.1:{settings.assignment_port}")
    env.setdefault("VERDICT_ANALYSIS_TARGET", f"127.0.0.1:{settings.analysis_port}")
    env["VERDICT_DATA_DIR"] = str(settings.data_dir.resolve())
    logs = settings.data_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    started: dict[str, subprocess.Popen[bytes] | None] = {svc.name: None for svc in installed}
    for svc in to_start:
        service_env = dict(env)
        if svc.name in keys:
            service_env.setdefault("VERDICT_SERVICE_API_KEY", keys[svc.name])
        # VERDICT_WORKERS processes per gRPC service share its port (SO_REUSEPORT).
        procs = []
        metrics_ports = svc.metrics_ports(settings)
        with open(logs / f"{svc.name}.log", "ab") as log_file:
            for k in range(settings.workers if svc.grpc else 1):
                worker_env = dict(service_env)
                if metrics_ports:
                    worker_env[f"VERDICT_{svc.name.upper()}_METRICS_PORT"] = str(metrics_ports[k])
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", svc.module],
                        env=worker_env,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        (run_dir / f"{svc.name}.pid").write_text("".join(f"{p.pid}\n" for p in procs))
        started[svc.name] = procs[0]
    deadline = time.monotonic() + 60
    security = settings.channel_security()
    failed = [
        svc
        for svc in installed
        if not (
            _healthy(svc.port(settings), deadline, started[svc.name], security)
            if svc.grpc
            else _http_healthy(svc.port(settings), deadline)
        )
    ]
    if failed:
        for svc in failed:
            log_path = logs / f"{svc.name}.log"
            print(
                f"error: {svc.name} did not report SERVING on port {svc.port(settings)}; "
                f"last lines of {log_path}:\n{_log_tail(log_path)}",
                file=sys.stderr,
            )
        print(
            "Verdict is not fully up (see above); `make down` stops what started.", file=sys.stderr
        )
        return 1
    print("Verdict is up.")
    print(f"  PostgreSQL  {settings.database_url}")
    print(f"  Redis       {settings.redis_url}")
    tls = "s" if settings.tls else ""
    for svc in installed:
        scheme = "grpc" if svc.grpc else "http"
        print(f"  {svc.name:<11} {scheme}{tls}://{settings.host}:{svc.port(settings)}")
    for svc in installed:
        for port in svc.metrics_ports(settings):
            print(f"  metrics     http{tls}://{settings.host}:{port}/metrics ({svc.name})")
    print(f"  admin key   {keys['']}")
    print(f"  logs        {logs}")
    return 0


def down(settings: Settings) -> int:
    """Stops the services `up` started, then the embedded servers."""
    for svc in SERVICES:
        pid_file = _run_dir(settings) / f"{svc.name}.pid"
        pids = _pids(pid_file)
        if pids:
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + settings.grace_period_s + 5
            while _pids(pid_file) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"stopped {svc.name}")
        pid_file.unlink(missing_ok=True)
    if settings.database_url is None and stop_postgres(settings.data_dir):
        print("stopped embedded PostgreSQL")
    if settings.redis_url is None and stop_redis(settings.data_dir):
        print("stopped embedded Redis")
    return 0


def status(settings: Settings) -> int:
    """Prints which services run, and whether each answers its health check."""
    for svc in SERVICES:
        if not svc.installed():
            continue
        pids = _pids(_run_dir(settings) / f"{svc.name}.pid")
        port = svc.port(settings)
        listed = ", ".join(str(p) for p in pids)
        if not pids:
            state = "stopped"
        elif not (
            _healthy(port, time.monotonic() + 1.0, security=settings.channel_security())
            if svc.grpc
            else _http_healthy(port, time.monotonic() + 1.0)
        ):
            state = f"running (pid {listed}), NOT serving on port {port}"
        else:
            state = f"running (pid {listed}) on port {port}"
        print(f"{svc.name:<11} {state}")
    return 0


def run(command: str, settings: Settings) -> int:
    """Dispatches `up`, `down` or `status`."""
    return {"up": up, "down": down, "status": status}[command](settings)
