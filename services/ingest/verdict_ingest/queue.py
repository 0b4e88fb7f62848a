"""The bounded write queue between the RPCs and the writers: backpressure and batching.

Capacity counts events, both waiting and being written, so the memory the service holds for
unwritten events is bounded. A unary RPC that finds no room gets RESOURCE_EXHAUSTED at once (the
client backs off); a stream waits a little for room first, which also slows its reader and so the
client through HTTP/2 flow control. A writer takes every waiting batch up to a size, so several
small RPC batches share one transaction; each RPC's future resolves after the commit.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

from verdict.trace_context import sampled_span_context
from verdict_ingest.encoding import EncodedBatch
from verdict_platform.errors import ResourceExhausted, Unavailable


@dataclass(frozen=True)
class WriteResult:
    """What a committed batch did: newly stored events and duplicates of stored ones."""

    accepted: int
    duplicates: int


@dataclass(eq=False)
class PendingWrite:
    """One RPC batch waiting to be written, and the future its RPC awaits."""

    batch: EncodedBatch
    future: asyncio.Future[WriteResult] = field(repr=False)
    trace: SpanContext | None = None
    """The sampled span of the RPC that sent it: its write joins that trace."""


class WriteQueue:
    """Bounded (in events) FIFO of pending writes; writers `take` and then `release`."""

    def __init__(self, capacity_events: int, take_events: int) -> None:
        self._capacity = capacity_events
        self._take_events = take_events
        self._used = 0
        self._waiting: collections.deque[PendingWrite] = collections.deque()
        self._has_writes = asyncio.Event()
        self._has_room = asyncio.Event()
        self._unavailable: str | None = None

    @property
    def depth(self) -> int:
        """Events waiting or being written."""
        return self._used

    @property
    def available(self) -> bool:
        """False while the writers cannot reach the database."""
        return self._unavailable is None

    def set_unavailable(self, reason: str | None) -> None:
        """Marks the database down (failing every waiting write) or, with None, up again."""
        self._unavailable = reason
        if reason is None:
            return
        failed = list(self._waiting)
        self._waiting.clear()
        for pending in failed:
            if not pending.future.done():
                pending.future.set_exception(Unavailable(reason))
        self.release(failed)

    def _fits(self, count: int) -> bool:
        # An empty queue takes any batch, so a batch larger than the capacity still goes through.
        return self._used == 0 or self._used + count <= self._capacity

    def offer(self, batch: EncodedBatch) -> asyncio.Future[WriteResult]:
        """Queues `batch`; raises ResourceExhausted when there is no room, Unavailable when down."""
        if self._unavailable is not None:
            raise Unavailable(self._unavailable)
        if not self._fits(batch.count):
            raise ResourceExhausted(
                f"ingest queue full ({self._used} of {self._capacity} events); retry later"
            )
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._used += batch.count
        self._waiting.append(PendingWrite(batch, future, sampled_span_context()))
        self._has_writes.set()
        return future

    async def put(self, batch: EncodedBatch, wait_s: float) -> asyncio.Future[WriteResult]:
        """Like `offer`, but waits up to `wait_s` for room before raising ResourceExhausted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._fits(batch.count) and self._unavailable is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._has_room.clear()
            try:
                await asyncio.wait_for(self._has_room.wait(), remaining)
            except TimeoutError:
                break
        return self.offer(batch)

    async def take(self) -> list[PendingWrite]:
        """Waits for at least one write, then takes the oldest ones up to `take_events` events."""
        while not self._waiting:
            self._has_writes.clear()
            await self._has_writes.wait()
        taken = [self._waiting.popleft()]
        size = taken[0].batch.count
        while self._waiting and size + self._waiting[0].batch.count <= self._take_events:
            pending = self._waiting.popleft()
            size += pending.batch.count
            taken.append(pending)
        return taken

    def release(self, writes: Sequence[PendingWrite]) -> None:
        """Gives back the room of writes that are finished (committed or failed)."""
        self._used -= sum(w.batch.count for w in writes)
        self._has_room.set()

    async def wait_empty(self, timeout_s: float) -> bool:
        """Waits until every write is finished (or the database is down); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._used > 0 and self._unavailable is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._has_room.clear()
            try:
                await asyncio.wait_for(self._has_room.wait(), remaining)
            except TimeoutError:
                return False
        return self._used == 0
