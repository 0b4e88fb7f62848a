"""The ingest use cases: check a batch, queue its valid events, report the outcome after commit.

No protobuf, gRPC or SQL here: events arrive as `EventLike` items, the write queue and the
exposure store are ports, so unit tests drive these with in-memory fakes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from verdict_ingest.encoding import EncodedBatch, EventEncoder
from verdict_ingest.queue import WriteQueue, WriteResult
from verdict_ingest.validation import (
    BatchLimits,
    EventLike,
    ExposureLike,
    ExposureRow,
    Rejection,
    TimeWindow,
    check_batch,
    check_exposures,
    known_exposures,
)
from verdict_platform.errors import ResourceExhausted
from verdict_platform.telemetry.catalog import INGEST_BATCH_SIZE, INGEST_EVENTS, INGEST_EXPOSURES

STREAM_WAIT_S = 10.0
"""How long a stream's batch waits for room in the queue before RESOURCE_EXHAUSTED."""


@dataclass(frozen=True)
class EventOutcome:
    """What happened to a batch of events once its valid ones are committed."""

    accepted: int
    duplicates: int
    rejections: Sequence[Rejection] = ()

    @property
    def rejected(self) -> int:
        """Events rejected by validation."""
        return len(self.rejections)


@dataclass(frozen=True)
class ExposureCounts:
    """What a stored batch of exposures did."""

    accepted: int
    duplicates: int
    conflicts: int


@dataclass(frozen=True)
class ExposureOutcome:
    """What happened to a batch of exposures."""

    counts: ExposureCounts
    rejections: Sequence[Rejection] = ()


@dataclass(frozen=True)
class PendingOutcome:
    """A batch accepted into the queue; `result()` waits for its commit."""

    write: asyncio.Future[WriteResult] | None
    rejections: Sequence[Rejection] = field(default=())

    async def result(self) -> EventOutcome:
        """The outcome after commit; raises Unavailable (or another error) when it failed."""
        if self.write is None:
            return EventOutcome(0, 0, self.rejections)
        written = await self.write
        return EventOutcome(written.accepted, written.duplicates, self.rejections)


class EventIntake:
    """Validates event batches and hands their valid rows to the write queue."""

    def __init__(
        self,
        queue: WriteQueue,
        window: TimeWindow,
        limits: BatchLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._encoder = EventEncoder(window)
        self._limits = limits
        self._clock = clock

    async def track(
        self, request_id: str, events: Sequence[EventLike], size_bytes: int
    ) -> EventOutcome:
        """One unary batch: RESOURCE_EXHAUSTED at once when the queue is full."""
        check_batch("request_id", request_id, "events", len(events), size_bytes, self._limits)
        encoded = self._encode(events)
        if not encoded.count:
            return EventOutcome(0, 0, encoded.rejections)
        written = await self._queue.offer(encoded)
        return EventOutcome(written.accepted, written.duplicates, encoded.rejections)

    async def submit(
        self, batch_id: str, events: Sequence[EventLike], size_bytes: int
    ) -> PendingOutcome:
        """One stream batch: waits a little for room, returns before the commit."""
        check_batch("batch_id", batch_id, "events", len(events), size_bytes, self._limits)
        encoded = self._encode(events)
        if not encoded.count:
            return PendingOutcome(None, encoded.rejections)
        write = await self._queue.put(encoded, STREAM_WAIT_S)
        return PendingOutcome(write, encoded.rejections)

    def _encode(self, events: Sequence[EventLike]) -> EncodedBatch:
        """Validates and encodes a batch, counting its size and its rejections (the writer
        counts what it stores)."""
        encoded = self._encoder.encode(events, self._clock())
        INGEST_BATCH_SIZE.record(len(events), "events")
        if encoded.rejections:
            INGEST_EVENTS.inc("rejected", by=len(encoded.rejections))
        return encoded


class ExposureRecorder(Protocol):
    """Where exposures are stored (`ExposureStore`)."""

    async def record(self, rows: Sequence[ExposureRow]) -> ExposureCounts: ...

    async def variants_of(self, experiment_keys: Collection[str]) -> dict[str, frozenset[str]]:
        """The variant keys of each started (not draft) experiment among `experiment_keys`."""
        ...


class ExposureIntake:
    """Validates exposure batches and stores them, a bounded number at a time."""

    def __init__(
        self,
        store: ExposureRecorder,
        window: TimeWindow,
        limits: BatchLimits,
        max_concurrent: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._window = window
        self._limits = limits
        self._max_concurrent = max_concurrent
        self._running = 0
        self._clock = clock

    async def track(
        self, request_id: str, exposures: Sequence[ExposureLike], size_bytes: int
    ) -> ExposureOutcome:
        """Stores the valid exposures; RESOURCE_EXHAUSTED when too many batches are in flight."""
        check_batch("request_id", request_id, "exposures", len(exposures), size_bytes, self._limits)
        checked = check_exposures(exposures, self._clock(), self._window)
        if not checked.rows:
            _count_exposures(len(exposures), ExposureCounts(0, 0, 0), len(checked.rejections))
            return ExposureOutcome(ExposureCounts(0, 0, 0), checked.rejections)
        if self._running >= self._max_concurrent:
            raise ResourceExhausted("too many exposure batches in flight; retry later")
        self._running += 1
        try:
            variants = await self._store.variants_of({r.experiment_key for r in checked.rows})
            rows, unknown = known_exposures(checked.rows, variants)
            counts = await self._store.record(rows) if rows else ExposureCounts(0, 0, 0)
        finally:
            self._running -= 1
        rejections = sorted([*checked.rejections, *unknown], key=lambda r: r.index)
        _count_exposures(len(exposures), counts, len(rejections))
        return ExposureOutcome(counts, rejections)


def _count_exposures(received: int, counts: ExposureCounts, rejected: int) -> None:
    INGEST_BATCH_SIZE.record(received, "exposures")
    for outcome, n in (
        ("accepted", counts.accepted),
        ("duplicate", counts.duplicates),
        ("conflict", counts.conflicts),
        ("rejected", rejected),
    ):
        if n:
            INGEST_EXPOSURES.inc(outcome, by=n)
