"""Alerts in PostgreSQL: raised once whatever the number of replicas, delivered with retries to
a real local HTTP receiver, their delivery state kept in the row."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from asvc_receiver import Receiver
from asvc_rows import unique_key

from support.eventually import eventually_async
from verdict.retry import Backoff
from verdict_analysis.alert_delivery import AlertDelivery
from verdict_analysis.alert_store import PostgresAlertLog
from verdict_analysis.alerts import NewAlert
from verdict_analysis.webhook_sender import WebhookSender

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = Backoff(initial_s=0.05, max_s=0.2)


def _srm(key: str, **extra: object) -> NewAlert:
    return NewAlert(key, "srm", "alert", "inconclusive", "mismatch", {"p_value": 1e-5}, 7, **extra)  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


def _now() -> datetime:
    return datetime.now(UTC)


async def test_two_replicas_raising_the_same_firing_rule_store_one_alert(
    pool: asyncpg.Pool,
) -> None:
    key = unique_key("alerts-race")
    replicas = [PostgresAlertLog(pool, deliver=False), PostgresAlertLog(pool, deliver=False)]
    raised = await asyncio.gather(*(r.raise_firing(key, [_srm(key)]) for r in replicas))
    assert sorted(len(r) for r in raised) == [0, 1]
    # a later analysis (any replica, or a restarted process) while the rule still fires: nothing
    assert await replicas[1].raise_firing(key, [_srm(key)]) == []
    [stored] = await replicas[0].page(key, None, 10)
    assert stored.alert.rule == "srm" and stored.alert.details == {"p_value": 1e-5}
    assert stored.delivered_at is None and "no webhook" in stored.last_error


async def test_a_rule_that_stops_firing_and_fires_again_alerts_again(pool: asyncpg.Pool) -> None:
    key = unique_key("alerts-episodes")
    log = PostgresAlertLog(pool, deliver=False)
    assert len(await log.raise_firing(key, [_srm(key)])) == 1
    assert await log.raise_firing(key, []) == []  # it stopped firing: the episode closes
    assert len(await log.raise_firing(key, [_srm(key)])) == 1
    assert len(await log.page(key, None, 10)) == 2


async def test_a_stop_alert_is_raised_once_per_dedup_key(pool: asyncpg.Pool) -> None:
    key = unique_key("alerts-stop")
    log = PostgresAlertLog(pool, deliver=False)
    first = await log.raise_once(_srm(key, dedup_key=f"{key}/run/srm/stopped"))
    again = await log.raise_once(_srm(key, dedup_key=f"{key}/run/srm/stopped"))
    assert first is not None and again is None


async def test_delivery_retries_until_the_receiver_accepts_and_records_it(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    key = unique_key("alerts-deliver")
    log = PostgresAlertLog(pool, deliver=True)
    [stored] = await log.raise_firing(key, [_srm(key)])
    delivery = AlertDelivery(log, WebhookSender(receiver.url), _now, FAST)

    async def delivered() -> bool:
        await delivery.deliver_due()
        [row] = await log.page(key, None, 1)
        return row.delivered_at is not None

    await eventually_async(delivered, timeout=10)
    [row] = await log.page(key, None, 1)
    assert row.attempts == 3 and row.last_error == ""
    assert [b["id"] for b in receiver.bodies] == [stored.id]
    assert receiver.bodies[0]["details"] == {"p_value": 1e-05}


async def test_a_rejected_alert_is_given_up_at_once_with_the_reason(pool: asyncpg.Pool) -> None:
    key = unique_key("alerts-reject")
    rejecting = Receiver(status=400)
    try:
        log = PostgresAlertLog(pool, deliver=True)
        await log.raise_firing(key, [_srm(key)])
        delivery = AlertDelivery(log, WebhookSender(rejecting.url), _now, FAST)
        await eventually_async(delivery.deliver_due, timeout=10)
        [row] = await log.page(key, None, 1)
        assert (row.attempts, row.delivered_at, row.last_error) == (1, None, "HTTP 400")
        assert await delivery.deliver_due() == 0  # not due any more
    finally:
        rejecting.close()


async def test_an_unreachable_webhook_is_given_up_after_the_attempts(pool: asyncpg.Pool) -> None:
    key = unique_key("alerts-gone")
    gone = Receiver()
    url = gone.url
    gone.close()
    log = PostgresAlertLog(pool, deliver=True)
    await log.raise_firing(key, [_srm(key)])
    delivery = AlertDelivery(log, WebhookSender(url, timeout_s=1), _now, FAST, max_attempts=3)

    async def given_up() -> bool:
        await delivery.deliver_due()
        [row] = await log.page(key, None, 1)
        return row.attempts == 3

    await eventually_async(given_up, timeout=15)
    [row] = await log.page(key, None, 1)
    assert row.delivered_at is None and row.last_error
    assert await delivery.deliver_due() == 0
