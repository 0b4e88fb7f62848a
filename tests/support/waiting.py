"""Waiting for a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Calls `probe` until it returns a truthy value (returned) or `timeout` passes (raises,
    with the last exception the probe raised, if any)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last_error = None
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s") from last_error
        time.sleep(interval)
