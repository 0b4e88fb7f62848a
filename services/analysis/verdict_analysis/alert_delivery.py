"""Delivery of stored alerts (use case): claim what is due, post it, record the attempt.

Runs in every analysis process; the store hands each due alert to one of them (a lease), so
replicas share the work and an attempt cut short by a crash is retried after the lease. A failed
attempt is retried on the `Backoff` schedule until `max_attempts`; a rejection that no retry can
fix (a 4xx) is recorded and given up at once. Every attempt is logged, counted
(`verdict_alert_deliveries`) and, when the analysis run that raised the alert was sampled,
traced as an `alert.deliver` span in that run's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from opentelemetry import trace

from verdict.retry import Backoff
from verdict.trace_context import parent
from verdict_analysis.alerts import DeliveryFailed, StoredAlert, alert_document
from verdict_analysis.ports import AlertLog, AlertSender, Clock
from verdict_platform.errors import Unavailable
from verdict_platform.telemetry.catalog import ALERT_DELIVERIES

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("verdict.analysis")

LEASE_S = 30.0
"""How long a claimed alert is this process's to deliver before another may retry it."""
POLL_S = 5.0
"""How often due alerts are looked for when nothing nudges the loop."""


class AlertDelivery:
    """Delivers due alerts through `sender`; `nudge()` after raising one delivers it at once."""

    def __init__(
        self,
        alerts: AlertLog,
        sender: AlertSender,
        clock: Clock,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
    ) -> None:
        self._alerts = alerts
        self._sender = sender
        self._clock = clock
        self._backoff = backoff or Backoff(initial_s=1.0, max_s=300.0)
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        """Looks for due alerts now."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """One pass: delivers (or records the failure of) each due alert; returns how many."""
        due = await self._alerts.claim_due(limit=20, lease_s=LEASE_S)
        for stored in due:
            await self._attempt(stored)
        return len(due)

    async def _attempt(self, stored: StoredAlert) -> None:
        attributes = {"verdict.alert_id": stored.id, "verdict.attempt": stored.attempts + 1}
        with (
            parent(stored.trace_context),
            _tracer.start_as_current_span("alert.deliver", attributes=attributes),
        ):
            await self._attempt_in_span(stored)

    async def _attempt_in_span(self, stored: StoredAlert) -> None:
        try:
            await self._sender.post(alert_document(stored))
        except DeliveryFailed as failure:
            ALERT_DELIVERIES.inc("failed")
            attempt = stored.attempts + 1
            retry_at = None
            if failure.retryable and attempt < self._max_attempts:
                wait = self._backoff.delay(attempt - 1)
                retry_at = self._clock() + timedelta(seconds=wait)
            log.warning(
                "alert %d delivery attempt %d failed: %s (%s)",
                stored.id,
                attempt,
                failure,
                "retrying" if retry_at else "giving up",
            )
            await self._alerts.record_delivery(stored.id, str(failure) or "failed", retry_at)
            return
        await self._alerts.record_delivery(stored.id, "", None)
        ALERT_DELIVERIES.inc("delivered")
        log.info("alert %d delivered", stored.id)

    async def run_forever(self) -> None:
        """Delivers until cancelled; a database outage only delays delivery."""
        while True:
            self._wake.clear()
            try:
                while await self.deliver_due():
                    pass
            except Unavailable as error:
                log.warning("alert delivery paused: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    def start(self) -> None:
        """Starts the loop in the background."""
        self._task = asyncio.create_task(self.run_forever(), name="alert-delivery")

    async def stop(self) -> None:
        """Stops the loop (an attempt in flight is retried after its lease)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
