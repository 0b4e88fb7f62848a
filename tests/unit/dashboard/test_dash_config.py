"""The console's settings: the shared ones from the platform's, its own validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from verdict_dashboard.config import DashboardSettings
from verdict_platform.settings import SettingsError


def test_defaults_and_the_service_targets_come_from_the_platform_settings() -> None:
    s = DashboardSettings.from_env(
        {
            "VERDICT_DASHBOARD_PORT": "9090",
            "VERDICT_ASSIGNMENT_TARGET": "assign:1",
            "VERDICT_ANALYSIS_TARGET": "analysis:2",
        }
    )
    assert (s.port, s.assignment_target, s.analysis_target) == (9090, "assign:1", "analysis:2")
    assert s.rpc_timeout_s == 5.0 and not s.secure_cookies and not s.tls
    default = DashboardSettings.from_env({})
    assert (default.port, default.analysis_target) == (8080, "127.0.0.1:50053")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VERDICT_DASHBOARD_RPC_TIMEOUT_S", "0"),
        ("VERDICT_DASHBOARD_SESSION_IDLE_S", "soon"),
        ("VERDICT_DASHBOARD_SECURE_COOKIES", "maybe"),
        ("VERDICT_DASHBOARD_TLS_CERT_FILE", "/no/such/file"),
        ("VERDICT_DASHBOARD_PORT", "99999"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        DashboardSettings.from_env({variable: value})
    assert raised.value.variable == variable


def test_serving_tls_marks_the_cookie_secure(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("y")
    with pytest.raises(SettingsError):
        DashboardSettings.from_env({"VERDICT_DASHBOARD_TLS_CERT_FILE": str(cert)})
    s = DashboardSettings.from_env(
        {"VERDICT_DASHBOARD_TLS_CERT_FILE": str(cert), "VERDICT_DASHBOARD_TLS_KEY_FILE": str(key)}
    )
    assert s.tls and s.secure_cookies
    behind_proxy = DashboardSettings.from_env({"VERDICT_DASHBOARD_SECURE_COOKIES": "1"})
    assert behind_proxy.secure_cookies and not behind_proxy.tls
