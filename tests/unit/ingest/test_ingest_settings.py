"""IngestSettings from the environment."""

from __future__ import annotations

import pytest

from verdict_ingest.settings import IngestSettings
from verdict_platform.settings import EnvReader, SettingsError


def test_defaults_match_the_documentation() -> None:
    s = IngestSettings.read(EnvReader({}))
    assert (s.max_batch, s.past_window_s, s.future_window_s, s.retention_days) == (
        5000,
        7 * 86_400,
        300,
        90,
    )
    assert s.past_window_days == 7


def test_values_are_read_from_the_environment() -> None:
    s = IngestSettings.read(
        EnvReader({"VERDICT_INGEST_MAX_BATCH": "100", "VERDICT_INGEST_QUEUE_EVENTS": "1000"})
    )
    assert (s.max_batch, s.queue_events) == (100, 1000)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VERDICT_INGEST_MAX_BATCH": "zero"}, "VERDICT_INGEST_MAX_BATCH"),
        ({"VERDICT_INGEST_MAX_BATCH": "0"}, "VERDICT_INGEST_MAX_BATCH"),
        ({"VERDICT_INGEST_FUTURE_WINDOW_S": "-1"}, "VERDICT_INGEST_FUTURE_WINDOW_S"),
        ({"VERDICT_INGEST_QUEUE_EVENTS": "10"}, "VERDICT_INGEST_QUEUE_EVENTS"),
        ({"VERDICT_EVENT_RETENTION_DAYS": "7"}, "VERDICT_EVENT_RETENTION_DAYS"),
    ],
)
def test_invalid_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        IngestSettings.read(EnvReader(env))
    assert caught.value.variable == variable


def test_the_other_services_read_their_settings_the_same_way() -> None:
    from verdict_analysis.settings import AnalysisSettings
    from verdict_assignment.settings import AssignmentSettings

    reader = EnvReader({"VERDICT_ANALYSIS_INTERVAL": "0.5", "VERDICT_CONFIG_POLL_S": "1"})
    assert AnalysisSettings.read(reader).interval_s == 0.5
    assert AssignmentSettings.read(reader).config_poll_s == 1.0
    with pytest.raises(SettingsError) as caught:
        AnalysisSettings.read(EnvReader({"VERDICT_ALERT_WEBHOOK_URL": "ftp://x"}))
    assert caught.value.variable == "VERDICT_ALERT_WEBHOOK_URL"
