"""Settings: read once from the environment into a frozen object, validated at start.

Every service receives a `Settings` and passes it down; nothing else reads the environment. An
invalid value raises `SettingsError` naming the variable, so a misconfigured process fails at
start instead of at its first request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
TRACE_EXPORTERS = ("none", "console")


class SettingsError(ValueError):
    """A configuration variable has an invalid value; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Configuration of a Verdict process. Field docs name their environment variable."""

    database_url: str | None = None
    """VERDICT_DATABASE_URL: PostgreSQL DSN; unset means the embedded server under data_dir."""
    redis_url: str | None = None
    """VERDICT_REDIS_URL: Redis URL; unset means the embedded server under data_dir."""
    redis_namespace: str = "verdict"
    """VERDICT_REDIS_NAMESPACE: prefix of every Redis key and channel (isolates tenants, tests)."""
    data_dir: Path = Path(".data")
    """VERDICT_DATA_DIR: where the embedded PostgreSQL and Redis keep their data."""
    host: str = "127.0.0.1"
    """VERDICT_HOST: address the gRPC servers bind to."""
    assignment_port: int = 50051
    """VERDICT_ASSIGNMENT_PORT."""
    ingest_port: int = 50052
    """VERDICT_INGEST_PORT."""
    analysis_port: int = 50053
    """VERDICT_ANALYSIS_PORT."""
    dashboard_port: int = 8080
    """VERDICT_DASHBOARD_PORT."""
    ingest_target: str = "127.0.0.1:50052"
    """VERDICT_INGEST_TARGET: where the assignment service sends exposures."""
    assignment_target: str = "127.0.0.1:50051"
    """VERDICT_ASSIGNMENT_TARGET: where analysis stops experiments (ExperimentService)."""
    analysis_target: str = "127.0.0.1:50053"
    """VERDICT_ANALYSIS_TARGET: where the console reads results (AnalysisService)."""
    service_api_key: str | None = field(default=None, repr=False)
    """VERDICT_SERVICE_API_KEY: key one service uses to call another (never logged)."""
    log_level: str = "INFO"
    """VERDICT_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""
    log_format: str = "json"
    """VERDICT_LOG_FORMAT: json (one object a line) or text."""
    grace_period_s: float = 10.0
    """VERDICT_GRACE_PERIOD_S: how long in-flight RPCs may run after SIGTERM."""
    db_pool_min: int = 1
    """VERDICT_DB_POOL_MIN: minimum PostgreSQL connections per process."""
    db_pool_max: int = 10
    """VERDICT_DB_POOL_MAX: maximum PostgreSQL connections per process."""
    key_refresh_s: float = 5.0
    """VERDICT_KEY_REFRESH_S: period of the background reload of API keys."""
    workers: int = 1
    """VERDICT_WORKERS: processes per service sharing its port (SO_REUSEPORT)."""
    tls_cert_file: Path | None = None
    """VERDICT_TLS_CERT_FILE: server certificate (PEM); with the key, serves TLS."""
    tls_key_file: Path | None = None
    """VERDICT_TLS_KEY_FILE: server private key (PEM)."""
    tls_client_ca_file: Path | None = None
    """VERDICT_TLS_CLIENT_CA_FILE: CA bundle; when set, clients need a certificate (mTLS)."""
    trace_exporter: str = "none"
    """VERDICT_TRACE_EXPORTER: none, or console (OpenTelemetry spans to stderr)."""
    analysis_interval_s: float = 60.0
    """VERDICT_ANALYSIS_INTERVAL: seconds between scheduled analyses of a running experiment."""
    alert_webhook_url: str | None = None
    """VERDICT_ALERT_WEBHOOK_URL: where stopping-rule alerts are POSTed as JSON."""

    def require_database_url(self) -> str:
        """The database URL; `embedded.resolve_servers` fills it in before services start."""
        if self.database_url is None:
            raise SettingsError("VERDICT_DATABASE_URL", "not set and no embedded server resolved")
        return self.database_url

    def require_redis_url(self) -> str:
        """The Redis URL; `embedded.resolve_servers` fills it in before services start."""
        if self.redis_url is None:
            raise SettingsError("VERDICT_REDIS_URL", "not set and no embedded server resolved")
        return self.redis_url


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _parsed(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], check: str
) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not {check}") from None


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    def parse(raw: str) -> int:
        value = int(raw)
        if not 1 <= value <= 65535:
            raise ValueError
        return value

    return _parsed(env, name, default, parse, "a port number in 1..65535")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < 1:
            raise ValueError
        return value

    return _parsed(env, name, default, parse, "a positive integer")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    def parse(raw: str) -> float:
        value = float(raw)
        if not value > 0 or value == float("inf"):
            raise ValueError
        return value

    return _parsed(env, name, default, parse, "a positive number")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    value = raw.upper() if choices is LOG_LEVELS else raw.lower()
    if value not in choices:
        raise SettingsError(name, f"{raw!r} is not one of {', '.join(choices)}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    if not raw.startswith(tuple(f"{s}://" for s in schemes)):
        raise SettingsError(name, f"must start with one of {', '.join(s + '://' for s in schemes)}")
    return raw


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = _text(env, name)
    if raw is None:
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(name, f"{raw!r} is not a readable file")
    return path


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates the settings from `env` (default: the process environment)."""
    e = os.environ if env is None else env
    settings = Settings(
        database_url=_url(e, "VERDICT_DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_url(e, "VERDICT_REDIS_URL", ("redis", "rediss", "unix")),
        redis_namespace=_text(e, "VERDICT_REDIS_NAMESPACE") or "verdict",
        data_dir=Path(_text(e, "VERDICT_DATA_DIR") or ".data"),
        host=_text(e, "VERDICT_HOST") or "127.0.0.1",
        assignment_port=_port(e, "VERDICT_ASSIGNMENT_PORT", 50051),
        ingest_port=_port(e, "VERDICT_INGEST_PORT", 50052),
        analysis_port=_port(e, "VERDICT_ANALYSIS_PORT", 50053),
        dashboard_port=_port(e, "VERDICT_DASHBOARD_PORT", 8080),
        ingest_target=_text(e, "VERDICT_INGEST_TARGET") or "127.0.0.1:50052",
        assignment_target=_text(e, "VERDICT_ASSIGNMENT_TARGET") or "127.0.0.1:50051",
        analysis_target=_text(e, "VERDICT_ANALYSIS_TARGET") or "127.0.0.1:50053",
        service_api_key=_text(e, "VERDICT_SERVICE_API_KEY"),
        log_level=_choice(e, "VERDICT_LOG_LEVEL", "INFO", LOG_LEVELS),
        log_format=_choice(e, "VERDICT_LOG_FORMAT", "json", LOG_FORMATS),
        grace_period_s=_positive_float(e, "VERDICT_GRACE_PERIOD_S", 10.0),
        db_pool_min=_positive_int(e, "VERDICT_DB_POOL_MIN", 1),
        db_pool_max=_positive_int(e, "VERDICT_DB_POOL_MAX", 10),
        key_refresh_s=_positive_float(e, "VERDICT_KEY_REFRESH_S", 5.0),
        workers=_positive_int(e, "VERDICT_WORKERS", 1),
        tls_cert_file=_file(e, "VERDICT_TLS_CERT_FILE"),
        tls_key_file=_file(e, "VERDICT_TLS_KEY_FILE"),
        tls_client_ca_file=_file(e, "VERDICT_TLS_CLIENT_CA_FILE"),
        trace_exporter=_choice(e, "VERDICT_TRACE_EXPORTER", "none", TRACE_EXPORTERS),
        analysis_interval_s=_positive_float(e, "VERDICT_ANALYSIS_INTERVAL", 60.0),
        alert_webhook_url=_url(e, "VERDICT_ALERT_WEBHOOK_URL", ("http", "https")),
    )
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError("VERDICT_DB_POOL_MIN", "must not exceed VERDICT_DB_POOL_MAX")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise SettingsError("VERDICT_TLS_KEY_FILE", "set both VERDICT_TLS_CERT_FILE and the key")
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise SettingsError("VERDICT_TLS_CLIENT_CA_FILE", "mTLS needs VERDICT_TLS_CERT_FILE too")
    return settings
