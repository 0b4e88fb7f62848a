"""Tracker configuration, counters and errors."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace

from verdict.channels import PLAINTEXT, ChannelSecurity, bearer
from verdict.retry import Backoff

DEFAULT_BACKOFF = Backoff(initial_s=0.05, max_s=2.0, jitter=True)
"""Retries of a batch: doubling from 50 ms to 2 s, jittered."""


class WhenFull(enum.Enum):
    """What `track` does when the buffer is full."""

    BLOCK = "block"
    """Wait for room (up to `TrackerOptions.block_timeout_s`, then raise `BufferFull`)."""
    RAISE = "raise"
    """Raise `BufferFull` at once."""


class BufferFull(Exception):
    """The tracker's buffer is full: the event was not accepted (the caller still has it)."""


@dataclass(frozen=True)
class TrackerOptions:
    """How a tracker connects, batches and retries."""

    target: str
    """host:port of the ingest service."""
    api_key: str | None = field(default=None, repr=False)
    """API key with the `ingest` role, sent as `authorization: Bearer ...`."""
    batch_size: int = 500
    """Most events per TrackEvents call."""
    flush_interval_s: float = 0.2
    """A partial batch is sent after this long."""
    buffer_size: int = 10_000
    """Most events waiting to be sent."""
    when_full: WhenFull = WhenFull.BLOCK
    """What `track` does when the buffer is full."""
    block_timeout_s: float | None = None
    """With WhenFull.BLOCK, how long `track` waits for room (None: as long as it takes)."""
    deadline_s: float = 10.0
    """Deadline of each TrackEvents call."""
    backoff: Backoff = DEFAULT_BACKOFF
    """Waits between retries of a batch (doubling, jittered)."""
    close_timeout_s: float = 30.0
    """How long `close` keeps sending (and retrying) what is buffered, at most."""
    security: ChannelSecurity = PLAINTEXT
    """TLS / mTLS of the channel (`verdict.channels`)."""
    channel_options: Sequence[tuple[str, int | str]] = (
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    )
    """gRPC channel arguments: reconnect quickly after the service restarts."""
    tracer_provider: trace.TracerProvider | None = field(default=None, repr=False)
    """OpenTelemetry tracer provider of the send spans (None: the global one). Each batch is
    sent under a `verdict.tracker.send` span whose W3C trace context travels with the call, so
    the batch, ingest's handling and its database write are one trace; without an SDK
    configured the spans are no-ops."""

    def tracer(self) -> trace.Tracer:
        """The tracer of the send spans."""
        return trace.get_tracer("verdict.tracking", tracer_provider=self.tracer_provider)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.buffer_size < 1:
            raise ValueError("batch_size and buffer_size must be positive")
        if self.flush_interval_s <= 0 or self.deadline_s <= 0:
            raise ValueError("flush_interval_s and deadline_s must be positive")

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the API key."""
        return bearer(self.api_key)


@dataclass(frozen=True)
class CloseBudget:
    """The deadline `close` set, shared by both trackers so they keep the same promise:
    `close(timeout_s)` returns within `timeout_s` (plus scheduling), and whatever is not
    acknowledged by then is counted as dropped and logged."""

    deadline: float = float("inf")
    """`time.monotonic()` by which sending stops; infinity while not closing."""

    @classmethod
    def starting_now(cls, timeout_s: float) -> CloseBudget:
        """The budget of a `close(timeout_s)` called now."""
        return cls(time.monotonic() + timeout_s)

    def rpc_timeout(self, deadline_s: float) -> float:
        """The deadline of the next call: the option's, cut to what is left of the budget."""
        return max(0.001, min(deadline_s, self.deadline - time.monotonic()))

    def allows_wait(self, wait_s: float) -> bool:
        """Whether waiting `wait_s` before a retry still leaves the budget unspent."""
        return time.monotonic() + wait_s < self.deadline


@dataclass(frozen=True)
class TrackerStats:
    """Counters of a tracker, in events."""

    tracked: int = 0
    """Accepted by `track`."""
    sent: int = 0
    """Acknowledged by the service (committed: accepted or duplicates of stored ones)."""
    duplicates: int = 0
    """Of `sent`, those the service had already (a retry whose first attempt had landed)."""
    retried: int = 0
    """Resent after a retryable error (an event resent twice counts twice)."""
    rejected: int = 0
    """Refused by the service's validation (see the logs for the reasons)."""
    failed: int = 0
    """Given up after a non-retryable error (e.g. PERMISSION_DENIED), logged."""
    dropped: int = 0
    """Still unsent when `close` ran out of time, logged."""
    buffered: int = 0
    """Waiting or being sent now."""
