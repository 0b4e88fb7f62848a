"""Alerts: a log line and an HTTP POST of a JSON document to the configured webhook.

The POST runs in a worker thread (stdlib `urllib.request`, no new dependency) with a deadline per
attempt, and is retried with exponential backoff on network errors, 5xx and 429; other 4xx are not
retried (the receiver rejected the document). A failed alert is logged, never raised: the stop
itself has already happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Alerter(Protocol):
    """Where alerts go."""

    async def send(self, alert: Mapping[str, Any]) -> bool:
        """Sends one alert; True when delivered (or when there is nowhere to deliver)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a webhook."""

    attempts: int = 5
    """Attempts in total, the first included."""
    first_delay_s: float = 0.5
    """Delay before the second attempt; doubles after each failure."""
    max_delay_s: float = 8.0
    timeout_s: float = 5.0
    """Deadline of one attempt."""


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class _Retryable(Exception):
    pass


def _post(url: str, body: bytes, timeout_s: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise _Retryable(f"HTTP {error.code}") from error
        return error.code
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise _Retryable(str(error)) from error


class WebhookAlerter:
    """Logs each alert and POSTs it to `url` (only logs when `url` is None)."""

    def __init__(self, url: str | None, policy: RetryPolicy | None = None) -> None:
        self._url = url
        self._policy = policy or RetryPolicy()

    async def send(self, alert: Mapping[str, Any]) -> bool:
        log.warning("analysis alert: %s", alert.get("summary", ""), extra={"alert": dict(alert)})
        if self._url is None:
            return True
        body = json.dumps(_clean(alert), default=str, allow_nan=False).encode()
        delay = self._policy.first_delay_s
        for attempt in range(1, self._policy.attempts + 1):
            try:
                status = await asyncio.to_thread(_post, self._url, body, self._policy.timeout_s)
            except _Retryable as error:
                log.warning("alert webhook attempt %d failed: %s", attempt, error)
            else:
                if 200 <= status < 300:
                    return True
                log.error("alert webhook rejected the alert: HTTP %d", status)
                return False
            if attempt < self._policy.attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._policy.max_delay_s)
        log.error("alert webhook unreachable after %d attempts", self._policy.attempts)
        return False
