"""IngestSettings from the environment."""

from __future__ import annotations

import pytest

from verdict_ingest.config import IngestSettings
from verdict_platform.settings import SettingsError


def test_defaults_match_the_documentation() -> None:
    s = IngestSettings.from_env({})
    assert (s.max_batch, s.past_window_s, s.future_window_s, s.retention_days) == (
        5000,
        7 * 86_400,
        300,
        90,
    )
    assert s.past_window_days == 7


def test_values_are_read_from_the_environment() -> None:
    s = IngestSettings.from_env(
        {"VERDICT_INGEST_MAX_BATCH": "100", "VERDICT_INGEST_QUEUE_EVENTS": "1000"}
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
        IngestSettings.from_env(env)
    assert caught.value.variable == variable
