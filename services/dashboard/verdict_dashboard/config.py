"""Settings of the console, read once from the environment into a frozen object.

The platform's `Settings` holds what every process shares (host, the dashboard's port, the
service targets, TLS files); these are the console's own knobs. An invalid value raises
`SettingsError` naming the variable, so the process fails at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from verdict_platform.settings import Settings, SettingsError, load_settings


@dataclass(frozen=True)
class DashboardSettings:
    """Console configuration. Field docs name their environment variable."""

    host: str = "127.0.0.1"
    """VERDICT_HOST: address the HTTP server binds to."""
    port: int = 8080
    """VERDICT_DASHBOARD_PORT."""
    assignment_target: str = "127.0.0.1:50051"
    """VERDICT_ASSIGNMENT_TARGET: ExperimentService and ApiKeyService."""
    analysis_target: str = "127.0.0.1:50053"
    """VERDICT_ANALYSIS_TARGET: AnalysisService."""
    rpc_timeout_s: float = 5.0
    """VERDICT_DASHBOARD_RPC_TIMEOUT_S: deadline of every unary call to a service."""
    session_idle_s: float = 8 * 3600.0
    """VERDICT_DASHBOARD_SESSION_IDLE_S: a session unused this long ends."""
    session_max_s: float = 7 * 24 * 3600.0
    """VERDICT_DASHBOARD_SESSION_MAX_S: a session ends this long after sign-in, used or not."""
    tls_cert_file: Path | None = None
    """VERDICT_DASHBOARD_TLS_CERT_FILE: serve HTTPS with this certificate (and the key)."""
    tls_key_file: Path | None = None
    """VERDICT_DASHBOARD_TLS_KEY_FILE: the certificate's private key (PEM)."""
    secure_cookies: bool = False
    """VERDICT_DASHBOARD_SECURE_COOKIES: mark the session cookie `Secure` (set by itself when
    serving TLS; set it to 1 behind a proxy that terminates TLS)."""
    log_level: str = "INFO"
    """VERDICT_LOG_LEVEL."""

    @property
    def tls(self) -> bool:
        """True when the console itself serves HTTPS."""
        return self.tls_cert_file is not None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, platform: Settings | None = None
    ) -> DashboardSettings:
        """Reads and validates the settings from `env` (default: the process environment)."""
        e = os.environ if env is None else env
        base = platform if platform is not None else load_settings(e)
        d = cls()
        cert = _file(e, "VERDICT_DASHBOARD_TLS_CERT_FILE")
        key = _file(e, "VERDICT_DASHBOARD_TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise SettingsError(
                "VERDICT_DASHBOARD_TLS_KEY_FILE",
                "set both VERDICT_DASHBOARD_TLS_CERT_FILE and the key",
            )
        return cls(
            host=base.host,
            port=base.dashboard_port,
            assignment_target=base.assignment_target,
            analysis_target=base.analysis_target,
            rpc_timeout_s=_positive(e, "VERDICT_DASHBOARD_RPC_TIMEOUT_S", d.rpc_timeout_s),
            session_idle_s=_positive(e, "VERDICT_DASHBOARD_SESSION_IDLE_S", d.session_idle_s),
            session_max_s=_positive(e, "VERDICT_DASHBOARD_SESSION_MAX_S", d.session_max_s),
            tls_cert_file=cert,
            tls_key_file=key,
            secure_cookies=cert is not None or _flag(e, "VERDICT_DASHBOARD_SECURE_COOKIES"),
            log_level=base.log_level,
        )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise SettingsError(name, f"{raw!r} is not a positive number")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(name, f"{raw!r} is not 1/0, true/false or yes/no")


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if raw == "":
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(name, f"{raw!r} is not a readable file")
    return path
