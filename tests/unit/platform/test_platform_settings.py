"""Settings: defaults, and an invalid value fails naming its variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from verdict_platform.settings import Settings, SettingsError, load_settings


def test_defaults_without_environment() -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.assignment_port, s.ingest_port, s.analysis_port, s.dashboard_port) == (
        50051,
        50052,
        50053,
        8080,
    )
    assert s.database_url is None and s.redis_url is None


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.assignment_port = 1  # type: ignore[misc]


def test_values_are_read() -> None:
    s = load_settings(
        {
            "VERDICT_DATABASE_URL": "postgresql://u@h:5432/d",
            "VERDICT_REDIS_URL": "redis://h:6379/0",
            "VERDICT_INGEST_PORT": "6000",
            "VERDICT_LOG_LEVEL": "debug",
            "VERDICT_GRACE_PERIOD_S": "2.5",
            "VERDICT_WORKERS": "4",
        }
    )
    assert s.database_url == "postgresql://u@h:5432/d"
    assert s.redis_url == "redis://h:6379/0"
    assert s.ingest_port == 6000
    assert s.log_level == "DEBUG"
    assert s.grace_period_s == 2.5
    assert s.workers == 4


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VERDICT_ASSIGNMENT_PORT", "http"),
        ("VERDICT_INGEST_PORT", "70000"),
        ("VERDICT_ANALYSIS_PORT", "0"),
        ("VERDICT_DATABASE_URL", "mysql://localhost/db"),
        ("VERDICT_REDIS_URL", "localhost:6379"),
        ("VERDICT_LOG_LEVEL", "loud"),
        ("VERDICT_LOG_FORMAT", "xml"),
        ("VERDICT_GRACE_PERIOD_S", "-1"),
        ("VERDICT_GRACE_PERIOD_S", "nan"),
        ("VERDICT_WORKERS", "0"),
        ("VERDICT_DB_POOL_MAX", "many"),
        ("VERDICT_TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("VERDICT_TRACE_EXPORTER", "jaeger"),
        ("VERDICT_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ("VERDICT_TRACE_SAMPLE_RATIO", "1.5"),
        ("VERDICT_TRACE_SAMPLE_RATIO", "-0.1"),
        ("VERDICT_INGEST_METRICS_PORT", "70000"),
        ("VERDICT_ANALYSIS_METRICS_PORT", "-1"),
        ("VERDICT_TRACE_EXPORTER", "otlp"),  # without VERDICT_OTLP_ENDPOINT
    ],
)
def test_invalid_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({variable: value})
    named = "VERDICT_OTLP_ENDPOINT" if value == "otlp" else variable
    assert err.value.variable == named
    assert named in str(err.value)


def test_pool_bounds_are_consistent() -> None:
    with pytest.raises(SettingsError, match="VERDICT_DB_POOL_MIN"):
        load_settings({"VERDICT_DB_POOL_MIN": "5", "VERDICT_DB_POOL_MAX": "2"})


def test_tls_needs_certificate_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="VERDICT_TLS_KEY_FILE"):
        load_settings({"VERDICT_TLS_CERT_FILE": str(cert)})


def test_blank_values_mean_unset() -> None:
    assert load_settings({"VERDICT_DATABASE_URL": "  ", "VERDICT_INGEST_PORT": ""}) == Settings()


def test_telemetry_settings() -> None:
    defaults = load_settings({})
    assert (defaults.trace_exporter, defaults.trace_sample_ratio) == ("none", 1.0)
    assert [defaults.metrics_port(s) for s in ("assignment", "ingest", "analysis")] == [
        9464,
        9465,
        9466,
    ]
    assert defaults.metrics_port("dashboard") == 0  # no metrics port of its own
    s = load_settings(
        {
            "VERDICT_TRACE_EXPORTER": "otlp",
            "VERDICT_OTLP_ENDPOINT": "collector:4317",
            "VERDICT_TRACE_SAMPLE_RATIO": "0.01",
            "VERDICT_INGEST_METRICS_PORT": "0",
        }
    )
    assert (s.trace_exporter, s.otlp_endpoint, s.trace_sample_ratio) == (
        "otlp",
        "collector:4317",
        0.01,
    )
    assert s.metrics_port("ingest") == 0
