"""Tracker options: validation, backoff, events."""

from __future__ import annotations

import random
import uuid

import pytest

from verdict.tracking import TrackerOptions, new_event


def test_default_retries_double_from_50_ms_to_2_s_with_jitter() -> None:
    backoff = TrackerOptions(target="t").backoff
    rng = random.Random(1)
    for attempt, cap in [(0, 0.05), (1, 0.1), (3, 0.4), (10, 2.0)]:
        delay = backoff.delay(attempt, rng)
        assert cap / 2 <= delay <= cap


@pytest.mark.parametrize("field", ["batch_size", "buffer_size"])
def test_sizes_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError):
        TrackerOptions(target="t", **{field: 0})


def test_new_event_gets_a_uuid_and_the_time() -> None:
    event = new_event("u1", "llm.call", {"latency_ms": 3.0}, {"route": "chat"}, timestamp=12.5)
    assert uuid.UUID(event.event_id).version == 4
    assert (event.timestamp.seconds, event.timestamp.nanos) == (12, 500_000_000)
    assert dict(event.measures) == {"latency_ms": 3.0}


def test_api_key_is_sent_as_bearer_and_hidden_from_repr() -> None:
    options = TrackerOptions(target="t", api_key="vdk_secret")
    assert options.metadata == (("authorization", "Bearer vdk_secret"),)
    assert "vdk_secret" not in repr(options)
