"""The one retry schedule of Verdict: exponential backoff with optional jitter (pure).

Every retry loop in the project (the trackers, the exposure sender, the database pool and
writers, Redis subscriptions, alert delivery) takes a `Backoff` instead of hand-rolling its
delays, so a reader finds one definition of "how long do we wait before trying again". Calls are
retried only when they are idempotent (Verdict's writes carry client-generated ids for that).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Wait `initial_s` before the first retry, `multiplier` times longer before each next one,
    never longer than `max_s`; with `jitter`, a uniform draw from the upper half of that wait
    (spreads clients that failed together, keeps a floor so retries never spin)."""

    initial_s: float = 0.1
    """Wait before the first retry."""
    max_s: float = 2.0
    """Longest wait between two attempts."""
    multiplier: float = 2.0
    """Growth of the wait after each failure."""
    jitter: bool = False
    """Draw each wait from [wait / 2, wait] instead of waiting exactly."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("Backoff needs 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("Backoff.multiplier must be at least 1")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `retry` (0 for the first retry)."""
        exponent = min(retry, 64)  # past this the cap applies anyway; avoids float overflow
        wait = min(self.max_s, self.initial_s * self.multiplier**exponent)
        if self.jitter:
            return (rng or random).uniform(wait / 2, wait)
        return wait

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before retries 0, 1, 2, ... (endless; stop when the caller gives up)."""
        retry = 0
        while True:
            yield self.delay(retry, rng)
            retry += 1
