"""Wait for a condition, never for time: the one polling helper of the test suite.

`eventually(check)` calls `check` until it returns something truthy (returned to the caller) or
the timeout passes (AssertionError with the last value or error, and `describe` when given).
`check` may be a plain function or a coroutine function (then use `await eventually_async`).
An exception raised by `check` counts as "not yet" until the deadline, then it is re-raised.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 20.0


def eventually(
    check: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of `check()` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            if time.monotonic() >= deadline:
                raise
        else:
            if value:
                return value
            if time.monotonic() >= deadline:
                detail = f"; {describe()}" if describe is not None else ""
                raise AssertionError(f"not true within {timeout} s (last: {value!r}){detail}")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T]] | Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 - a poll deadline, not a cancellation
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of `check()` (awaited when it is a coroutine) within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            if time.monotonic() >= deadline:
                raise
        else:
            if value:
                return value  # type: ignore[return-value]
            if time.monotonic() >= deadline:
                detail = f"; {describe()}" if describe is not None else ""
                raise AssertionError(f"not true within {timeout} s (last: {value!r}){detail}")
        await asyncio.sleep(interval)
