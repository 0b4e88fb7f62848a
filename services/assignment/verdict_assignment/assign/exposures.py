"""The exposure sink: records first assignments without slowing `Assign` down.

`record` is synchronous and cheap (a set lookup and an append): a bounded set of recently seen
(experiment, unit, variant) triples drops repeats in-process, so a unit assigned a thousand times
is sent once per process (ingest deduplicates across processes and retries anyway). Each exposure
carries the attribute and value its experiment hashed (empty for the unit id itself), which
analysis counts as the unit and fallback stickiness looks variants up by. A background
task flushes the buffer at most every `flush_interval_s`, in batches, retrying the errors a
sender marks as transient with backoff under the same request id (ingest is idempotent). The
buffer is bounded: when ingest stays away long enough to fill it, new exposures are dropped and
counted rather than growing memory without end. `stop` flushes what is left.

Traces: an exposure recorded by a sampled Assign keeps that call's span context. A batch holding
any such exposure is sent under an `exposures.send` span that continues the trace of the first
of them (so the Assign, the send, ingest's TrackExposures and its write are one trace) and links
to every other sampled Assign in the batch (their traces point at the batch that carried their
exposure). A batch of unsampled exposures starts no span.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext

from verdict.evaluation import Assignment, Reason
from verdict.retry import Backoff
from verdict.trace_context import parent
from verdict_assignment.assign import fastpath
from verdict_platform.telemetry.catalog import (
    EXPOSURES_DROPPED,
    EXPOSURES_RECORDED,
    EXPOSURES_SENT,
)

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("verdict.assignment")

SEND_BACKOFF = Backoff(initial_s=0.05, max_s=2.0)
"""Waits between the attempts of one exposure batch."""


@dataclass(frozen=True, slots=True)
class PendingExposure:
    """An exposure waiting to be sent."""

    experiment_key: str
    variant_key: str
    unit_id: str
    timestamp: float
    """Epoch seconds of the assignment."""
    allocation_version: int
    segments: tuple[tuple[str, str], ...] = ()
    """(attribute, value) pairs recorded for breakdowns."""
    trace: SpanContext | None = None
    """The span of the sampled Assign that recorded it (None when unsampled)."""
    hash_attribute: str = ""
    """The attribute hashed to bucket the unit; empty when it is the unit id ("id")."""
    hash_value: str = ""
    """The value hashed; empty when it is the unit id."""


class TransientSendError(Exception):
    """The batch may succeed if sent again (ingest unavailable or overloaded)."""


class ExposureSender(Protocol):
    """Delivers one batch; raises TransientSendError to be retried, anything else to drop it."""

    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None: ...


class ExposureSink:
    """Buffers exposures and sends them in the background."""

    def __init__(
        self,
        sender: ExposureSender,
        *,
        flush_interval_s: float = 0.1,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        recent_size: int = 200_000,
        max_attempts: int = 6,
        backoff: Backoff = SEND_BACKOFF,
    ) -> None:
        self._sender = sender
        self._interval = flush_interval_s
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._recent_size = recent_size
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._buffer: list[PendingExposure] = []
        # Unit id -> experiment key -> variant key recorded lately (one lookup per unit on the
        # hot path); `_recent_count` entries in all, the oldest units forgotten first.
        self._recent: dict[str, dict[str, str]] = {}
        self._recent_count = 0
        self._has_data = asyncio.Event()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        """Exposures delivered."""
        self.dropped = 0
        """Exposures lost: buffer full, or their batch failed for good."""

    @property
    def depth(self) -> int:
        """Exposures waiting in the buffer."""
        return len(self._buffer)

    def unrecorded(
        self, results: list[Assignment], unit_id: str, exposed: tuple[Reason, ...]
    ) -> list[Assignment]:
        """The results with a variant, a reason in `exposed`, and no recent exposure recorded."""
        return fastpath.unrecorded(results, unit_id, self._recent, exposed)

    def record(self, exposure: PendingExposure) -> None:
        """Queues `exposure` unless it was recorded recently or the buffer is full."""
        recent = self._recent
        unit, key = exposure.unit_id, exposure.experiment_key
        seen = recent.get(unit)
        if seen is not None and seen.get(key) == exposure.variant_key:
            return
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            EXPOSURES_DROPPED.inc("buffer_full")
            return
        if seen is None:
            seen = recent[unit] = {}
        if key not in seen:
            self._recent_count += 1
        seen[key] = exposure.variant_key
        while self._recent_count > self._recent_size and len(recent) > 1:
            oldest = next(iter(recent))  # dicts keep insertion order
            self._recent_count -= len(recent.pop(oldest))
        self._buffer.append(exposure)
        EXPOSURES_RECORDED.inc()
        self._has_data.set()

    def start(self) -> None:
        """Starts the background flusher."""
        self._task = asyncio.create_task(self._flush_forever(), name="exposure-flusher")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the flusher and sends what is left (giving up after `timeout_s`)."""
        self._stopping = True
        self._has_data.set()
        self._stop_requested.set()  # ends the flusher's wait between flushes at once
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except TimeoutError:
            self.dropped += len(self._buffer)
            EXPOSURES_DROPPED.inc("shutdown", by=len(self._buffer))
            log.error("exposures not flushed at shutdown", extra={"lost": len(self._buffer)})

    async def flush(self) -> None:
        """Sends everything buffered now."""
        batch, self._buffer = self._buffer, []
        self._has_data.clear()
        for start in range(0, len(batch), self._batch_size):
            await self._send(batch[start : start + self._batch_size])

    async def _flush_forever(self) -> None:
        last = -float("inf")
        while not self._stopping:
            await self._has_data.wait()
            if self._stopping:
                return
            delay = last + self._interval - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                if self._stopping:
                    return  # stop() sends what is left
            last = time.monotonic()
            try:
                await self.flush()
            except Exception:  # never let the flusher die; the batch is counted as dropped
                log.exception("exposure flush failed")

    async def _send(self, batch: list[PendingExposure]) -> None:
        traces = list({e.trace.span_id: e.trace for e in batch if e.trace is not None}.values())
        if not traces:
            await self._send_batch(batch)
            return
        with (
            parent(traces[0]),
            _tracer.start_as_current_span(
                "exposures.send",
                links=[Link(t) for t in traces[1:]],
                attributes={
                    "verdict.exposures": len(batch),
                    "verdict.sampled_assigns": len(traces),
                },
            ),
        ):
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[PendingExposure]) -> None:
        request_id = str(uuid.uuid4())
        waits = self._backoff.delays()
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._sender.send(request_id, batch)
                self.sent += len(batch)
                EXPOSURES_SENT.inc(by=len(batch))
                return
            except TransientSendError as error:
                if attempt == self._max_attempts:
                    log.error("exposure batch dropped after %d attempts: %s", attempt, error)
                    break
                await asyncio.sleep(next(waits))
            except Exception as error:
                log.error("exposure batch refused, dropped: %r", error)
                break
        self.dropped += len(batch)
        EXPOSURES_DROPPED.inc("send_failed", by=len(batch))
        for exposure in batch:  # let a later assignment record them again
            seen = self._recent.get(exposure.unit_id)
            if seen is not None and seen.get(exposure.experiment_key) == exposure.variant_key:
                del seen[exposure.experiment_key]
                self._recent_count -= 1
                if not seen:
                    del self._recent[exposure.unit_id]
