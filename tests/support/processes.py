"""Start service processes on free ports and wait until they report SERVING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.eventually import eventually
from verdict_platform.settings import Settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def refuses_connections(target: str) -> bool:
    """Whether nothing listens at host:port any more (a stopping server closed its port)."""
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def service_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a service process of this test session runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERDICT_")}
    env.update(
        VERDICT_DATABASE_URL=settings.require_database_url(),
        VERDICT_REDIS_URL=settings.require_redis_url(),
        VERDICT_REDIS_NAMESPACE=settings.redis_namespace,
        VERDICT_DATA_DIR=str(settings.data_dir),
        VERDICT_LOG_FORMAT="text",
        VERDICT_KEY_REFRESH_S=str(settings.key_refresh_s),
        VERDICT_GRACE_PERIOD_S=str(settings.grace_period_s),
    )
    env.update(extra or {})
    return env


def wait_serving(
    target: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Waits until `target` answers SERVING; fails at once if `proc` exits first."""

    def serving_or_exited() -> str:
        if proc is not None and proc.poll() is not None:
            return "exited"
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        return "serving" if reply.status == health_pb2.HealthCheckResponse.SERVING else ""

    state = eventually(
        serving_or_exited, timeout, interval=0.1, describe=lambda: f"{target} not SERVING"
    )
    if state == "exited":
        assert proc is not None
        raise RuntimeError(f"service exited with {proc.returncode} before serving")


@dataclass
class RunningService:
    """A service process started by a test."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        """host:port to dial."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        """Sends SIGTERM (graceful stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Sends SIGKILL."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """Stops gracefully (SIGKILL after `timeout`); returns the exit code."""
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def start_service_process(
    settings: Settings,
    module: str,
    port_variable: str,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    wait: bool = True,
) -> RunningService:
    """Runs `python -m module` with the session's servers on a free port."""
    port = port or free_port()
    env = service_env(settings, {port_variable: str(port), **(extra_env or {})})
    log_dir = Path(os.environ.get("VERDICT_TEST_LOGS", "/tmp/verdict-test-logs"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{module}-{port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    service = RunningService(proc, port, log_path)
    if wait:
        try:
            wait_serving(service.target, proc=proc)
        except Exception:
            service.kill()
            raise RuntimeError(f"{module} did not start:\n{service.log()}") from None
    return service
