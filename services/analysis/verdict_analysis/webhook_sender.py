"""The webhook adapter of the `AlertSender` port: one HTTP POST of a JSON document per attempt.

The POST runs in a worker thread (stdlib `urllib.request`, no new dependency) with a deadline.
Network errors, 5xx and 429 are retryable; other 4xx are not (the receiver rejected the
document). Retries, their schedule and the record of each attempt belong to `alert_delivery`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from verdict.trace_context import with_trace
from verdict_analysis.alerts import DeliveryFailed, json_safe

TIMEOUT_S = 5.0
"""Deadline of one attempt."""


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        retryable = error.code >= 500 or error.code == 429
        raise DeliveryFailed(f"HTTP {error.code}", retryable=retryable) from error
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise DeliveryFailed(str(error), retryable=True) from error
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}", retryable=False)


class WebhookSender:
    """POSTs alert documents to `url`."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        self._timeout_s = timeout_s

    async def post(self, document: Mapping[str, Any]) -> None:
        body = json.dumps(json_safe(dict(document)), default=str, allow_nan=False).encode()
        # The receiver may continue the trace (W3C trace context over HTTP).
        headers = dict(with_trace((("Content-Type", "application/json"),)))
        await asyncio.to_thread(_post, self._url, body, headers, self._timeout_s)
