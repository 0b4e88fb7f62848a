"""The alert reaches a real local HTTP receiver, retried with backoff through a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asvc_receiver import Receiver

from verdict_analysis.alerts import RetryPolicy, WebhookAlerter


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


FAST = RetryPolicy(attempts=4, first_delay_s=0.05, timeout_s=2.0)


@pytest.mark.asyncio(loop_scope="session")
async def test_alert_is_posted_as_json_after_retries(receiver: Receiver) -> None:
    alert = {"experiment_key": "exp", "rule": "srm", "details": {"p_value": float("nan")}}
    assert await WebhookAlerter(receiver.url, FAST).send(alert)
    assert receiver.attempts == 3
    assert receiver.bodies == [
        {"experiment_key": "exp", "rule": "srm", "details": {"p_value": None}}
    ]


@pytest.mark.asyncio(loop_scope="session")
async def test_rejected_alert_is_not_retried() -> None:
    r = Receiver(status=400)
    try:
        assert not await WebhookAlerter(r.url, FAST).send({"rule": "srm"})
        assert r.attempts == 1
    finally:
        r.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_unreachable_webhook_gives_up_after_the_attempts() -> None:
    r = Receiver()
    url = r.url
    r.close()
    assert not await WebhookAlerter(url, FAST).send({"rule": "srm"})
