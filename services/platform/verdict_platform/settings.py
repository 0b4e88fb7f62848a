"""Settings: read once from the environment into a frozen object, validated at start.

`Settings` holds what every process shares; each service adds its own small frozen settings
(`IngestSettings`, `AssignmentSettings`, `AnalysisSettings`, `DashboardSettings`) read by the same
`EnvReader`, once, at start, by the service template (`verdict_platform.server.run_service`);
nothing else reads the environment. An invalid value raises `SettingsError` naming the variable,
so a misconfigured process fails at start instead of at its first request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from verdict.channels import PLAINTEXT, ChannelSecurity
from verdict.limits import FieldLimit, RequestLimits

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")
TRACE_EXPORTERS = ("none", "console", "otlp")


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
    """VERDICT_TLS_CLIENT_CA_FILE: CA bundle; when set, clients need a certificate (mTLS), and
    this process presents its own (VERDICT_TLS_CERT_FILE) when it calls another service."""
    tls_ca_file: Path | None = None
    """VERDICT_TLS_CA_FILE: CA bundle this process trusts when it calls another service (the
    system's trust store when unset)."""
    tls_server_name: str | None = None
    """VERDICT_TLS_SERVER_NAME: name the other services' certificates carry, when the targets
    are addresses that do not (e.g. 127.0.0.1); the certificate is always checked."""
    trace_exporter: str = "none"
    """VERDICT_TRACE_EXPORTER: none (no spans), console (spans to stderr) or otlp (spans to the
    OTLP/gRPC collector at VERDICT_OTLP_ENDPOINT)."""
    otlp_endpoint: str | None = None
    """VERDICT_OTLP_ENDPOINT: host:port of an OTLP/gRPC collector (plaintext), or
    https://host:port (TLS, trusting VERDICT_TLS_CA_FILE or the system's roots)."""
    trace_sample_ratio: float = 1.0
    """VERDICT_TRACE_SAMPLE_RATIO: share of new traces recorded (0 to 1); a call that arrives
    with a W3C `traceparent` follows its caller's decision (parent-based sampling)."""
    assignment_metrics_port: int = 9464
    """VERDICT_ASSIGNMENT_METRICS_PORT: Prometheus `/metrics` over HTTP; 0 disables."""
    ingest_metrics_port: int = 9465
    """VERDICT_INGEST_METRICS_PORT: Prometheus `/metrics` over HTTP; 0 disables."""
    analysis_metrics_port: int = 9466
    """VERDICT_ANALYSIS_METRICS_PORT: Prometheus `/metrics` over HTTP; 0 disables."""
    max_payload_bytes: int = 64 * 1024
    """VERDICT_MAX_PAYLOAD_BYTES: largest variant payload (serialised); the other request
    limits are fixed (`verdict.limits`)."""
    max_snapshot_bytes: int = 8 * 1024 * 1024
    """VERDICT_MAX_SNAPSHOT_BYTES: largest configuration snapshot (running and stopped
    experiments, saved groups) that local evaluators receive; a change that would exceed it is
    refused (FAILED_PRECONDITION)."""

    def request_limits(self) -> RequestLimits:
        """The request limits in force at the door of every service."""
        return RequestLimits().with_field(
            "verdict.v1.Variant.payload", FieldLimit(max_bytes=self.max_payload_bytes)
        )

    @property
    def tls(self) -> bool:
        """Whether this deployment runs TLS: its services serve it and call each other over it."""
        return self.tls_cert_file is not None

    def channel_security(self) -> ChannelSecurity:
        """How this process's gRPC clients reach the other services: TLS when the platform
        serves TLS (trusting VERDICT_TLS_CA_FILE, checking VERDICT_TLS_SERVER_NAME when set),
        presenting this process's certificate when the servers require client certificates."""
        if not self.tls:
            return PLAINTEXT
        mtls = self.tls_client_ca_file is not None
        return ChannelSecurity.from_files(
            ca_file=self.tls_ca_file,
            cert_file=self.tls_cert_file if mtls else None,
            key_file=self.tls_key_file if mtls else None,
            server_name=self.tls_server_name,
        )

    def metrics_port(self, service: str) -> int:
        """The `/metrics` port of `service` ("assignment", "ingest", "analysis"); 0 for none."""
        port: int = getattr(self, f"{service}_metrics_port", 0)
        return port

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


class EnvReader:
    """The platform's reader of `VERDICT_*` variables: every setting of every service is read
    through one of these methods, so parsing, defaults and error messages are the same
    everywhere. Each raises `SettingsError` naming the variable. An unset or blank variable
    gives the default."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env

    def text(self, name: str) -> str | None:
        """The stripped value, or None when unset or blank."""
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _parsed(self, name: str, default: T, parse: Callable[[str], T], check: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not {check}") from None

    def port(self, name: str, default: int) -> int:
        """A TCP port, 1 to 65535."""

        def parse(raw: str) -> int:
            value = int(raw)
            if not 1 <= value <= 65535:
                raise ValueError
            return value

        return self._parsed(name, default, parse, "a port number in 1..65535")

    def port_or_zero(self, name: str, default: int) -> int:
        """A TCP port, or 0 for "off"."""

        def parse(raw: str) -> int:
            value = int(raw)
            if not 0 <= value <= 65535:
                raise ValueError
            return value

        return self._parsed(name, default, parse, "a port number in 1..65535, or 0 (off)")

    def fraction(self, name: str, default: float) -> float:
        """A number from 0 to 1."""

        def parse(raw: str) -> float:
            value = float(raw)
            if not 0.0 <= value <= 1.0:
                raise ValueError
            return value

        return self._parsed(name, default, parse, "a number from 0 to 1")

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        """An integer of at least `minimum`."""

        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum:
                raise ValueError
            return value

        return self._parsed(name, default, parse, f"an integer >= {minimum}")

    def positive_float(self, name: str, default: float) -> float:
        """A finite number above zero."""

        def parse(raw: str) -> float:
            value = float(raw)
            if not value > 0 or value == float("inf"):
                raise ValueError
            return value

        return self._parsed(name, default, parse, "a positive number")

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False
    ) -> str:
        """One of `choices` (compared in upper or lower case)."""
        raw = self.text(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise SettingsError(name, f"{raw!r} is not one of {', '.join(choices)}")
        return value

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        """A URL with one of `schemes`, or None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        if not raw.startswith(tuple(f"{s}://" for s in schemes)):
            raise SettingsError(
                name, f"must start with one of {', '.join(s + '://' for s in schemes)}"
            )
        return raw

    def file(self, name: str) -> Path | None:
        """The path of a readable file, or None when unset."""
        raw = self.text(name)
        if raw is None:
            return None
        path = Path(raw)
        if not path.is_file():
            raise SettingsError(name, f"{raw!r} is not a readable file")
        return path


def load_settings(env: Mapping[str, str] | EnvReader | None = None) -> Settings:
    """Reads and validates the settings from `env` (default: the process environment)."""
    r = env if isinstance(env, EnvReader) else EnvReader(env)
    settings = Settings(
        database_url=r.url("VERDICT_DATABASE_URL", ("postgresql", "postgres")),
        redis_url=r.url("VERDICT_REDIS_URL", ("redis", "rediss", "unix")),
        redis_namespace=r.text("VERDICT_REDIS_NAMESPACE") or "verdict",
        data_dir=Path(r.text("VERDICT_DATA_DIR") or ".data"),
        host=r.text("VERDICT_HOST") or "127.0.0.1",
        assignment_port=r.port("VERDICT_ASSIGNMENT_PORT", 50051),
        ingest_port=r.port("VERDICT_INGEST_PORT", 50052),
        analysis_port=r.port("VERDICT_ANALYSIS_PORT", 50053),
        dashboard_port=r.port("VERDICT_DASHBOARD_PORT", 8080),
        ingest_target=r.text("VERDICT_INGEST_TARGET") or "127.0.0.1:50052",
        assignment_target=r.text("VERDICT_ASSIGNMENT_TARGET") or "127.0.0.1:50051",
        analysis_target=r.text("VERDICT_ANALYSIS_TARGET") or "127.0.0.1:50053",
        service_api_key=r.text("VERDICT_SERVICE_API_KEY"),
        log_level=r.choice("VERDICT_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        log_format=r.choice("VERDICT_LOG_FORMAT", "json", LOG_FORMATS),
        grace_period_s=r.positive_float("VERDICT_GRACE_PERIOD_S", 10.0),
        db_pool_min=r.integer("VERDICT_DB_POOL_MIN", 1),
        db_pool_max=r.integer("VERDICT_DB_POOL_MAX", 10),
        key_refresh_s=r.positive_float("VERDICT_KEY_REFRESH_S", 5.0),
        workers=r.integer("VERDICT_WORKERS", 1),
        tls_cert_file=r.file("VERDICT_TLS_CERT_FILE"),
        tls_key_file=r.file("VERDICT_TLS_KEY_FILE"),
        tls_client_ca_file=r.file("VERDICT_TLS_CLIENT_CA_FILE"),
        tls_ca_file=r.file("VERDICT_TLS_CA_FILE"),
        tls_server_name=r.text("VERDICT_TLS_SERVER_NAME"),
        trace_exporter=r.choice("VERDICT_TRACE_EXPORTER", "none", TRACE_EXPORTERS),
        otlp_endpoint=r.text("VERDICT_OTLP_ENDPOINT"),
        trace_sample_ratio=r.fraction("VERDICT_TRACE_SAMPLE_RATIO", 1.0),
        assignment_metrics_port=r.port_or_zero("VERDICT_ASSIGNMENT_METRICS_PORT", 9464),
        ingest_metrics_port=r.port_or_zero("VERDICT_INGEST_METRICS_PORT", 9465),
        analysis_metrics_port=r.port_or_zero("VERDICT_ANALYSIS_METRICS_PORT", 9466),
        max_payload_bytes=r.integer("VERDICT_MAX_PAYLOAD_BYTES", 64 * 1024, 1024),
        max_snapshot_bytes=r.integer("VERDICT_MAX_SNAPSHOT_BYTES", 8 * 1024 * 1024, 64 * 1024),
    )
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError("VERDICT_DB_POOL_MIN", "must not exceed VERDICT_DB_POOL_MAX")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise SettingsError("VERDICT_TLS_KEY_FILE", "set both VERDICT_TLS_CERT_FILE and the key")
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise SettingsError("VERDICT_TLS_CLIENT_CA_FILE", "mTLS needs VERDICT_TLS_CERT_FILE too")
    if settings.trace_exporter == "otlp" and settings.otlp_endpoint is None:
        raise SettingsError("VERDICT_OTLP_ENDPOINT", "VERDICT_TRACE_EXPORTER=otlp needs it")
    return settings
