"""`AsyncTracker`: the asyncio flavour (a background task batches and sends).

Use it as `async with AsyncTracker(options) as tracker:` or call `await tracker.close()`:
an event loop cannot run at interpreter exit, so unlike `Tracker` it cannot flush then; a
tracker garbage-collected with events still buffered logs how many were lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import Mapping

import grpc
from opentelemetry import trace

from verdict.channels import RETRYABLE, aio_channel
from verdict.trace_context import with_trace
from verdict.tracking.counters import Counters, log
from verdict.tracking.events import new_event
from verdict.tracking.options import (
    BufferFull,
    CloseBudget,
    TrackerOptions,
    TrackerStats,
    WhenFull,
)
from verdict.v1 import ingest_pb2, ingest_pb2_grpc


class AsyncTracker:
    """Buffers events and sends them from a background task of the running loop."""

    def __init__(self, options: TrackerOptions) -> None:
        self._options = options
        self._buffer: collections.deque[ingest_pb2.Event] = collections.deque()
        self._in_flight = 0
        self._changed = asyncio.Condition()
        self._closing = False
        self._budget = CloseBudget()
        self._counters = Counters()
        self._channel = aio_channel(options.target, options.security, options.channel_options)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._tracer = options.tracer()
        self._task: asyncio.Task[None] | None = None

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="verdict-tracker")

    async def track(
        self,
        unit_id: str,
        name: str,
        measures: Mapping[str, float] | None = None,
        properties: Mapping[str, str] | None = None,
        *,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> str:
        """Buffers one event; returns its id at once unless the buffer is full (then waits or
        raises `BufferFull`, by option)."""
        event = new_event(
            unit_id, name, measures, properties, timestamp=timestamp, event_id=event_id
        )
        await self.track_event(event)
        return event.event_id

    def track_nowait(self, event: ingest_pb2.Event) -> None:
        """Buffers a ready-made event, raising `BufferFull` when there is no room."""
        if self._closing:
            raise RuntimeError("tracker is closed")
        if len(self._buffer) >= self._options.buffer_size:
            raise BufferFull(f"{len(self._buffer)} events buffered")
        self._ensure_started()
        self._buffer.append(event)
        self._counters.add(tracked=1)
        if len(self._buffer) in (1, self._options.batch_size):  # wake the sender
            self._notify()

    async def track_event(self, event: ingest_pb2.Event) -> None:
        """Buffers a ready-made event, waiting for room when full (WhenFull.BLOCK)."""
        options = self._options
        if len(self._buffer) >= options.buffer_size and options.when_full is WhenFull.BLOCK:
            self._ensure_started()
            try:
                async with asyncio.timeout(options.block_timeout_s), self._changed:
                    await self._changed.wait_for(
                        lambda: len(self._buffer) < options.buffer_size or self._closing
                    )
            except TimeoutError:
                raise BufferFull(f"no room within {options.block_timeout_s} s") from None
        self.track_nowait(event)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Waits until everything tracked so far is sent (or given up); False on timeout."""
        if not self._buffer and self._in_flight == 0:
            return True
        self._ensure_started()
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                self._changed.notify_all()
                await self._changed.wait_for(lambda: not self._buffer and self._in_flight == 0)
        except TimeoutError:
            return False
        return True

    def stats(self) -> TrackerStats:
        """The counters now."""
        return self._counters.snapshot(len(self._buffer) + self._in_flight)

    async def close(self, timeout_s: float | None = None) -> TrackerStats:
        """Sends what is buffered, retrying, for at most `timeout_s` (default close_timeout_s),
        then stops; what is not acknowledged by then is counted as dropped and logged. The same
        promise as `Tracker.close`."""
        wait = self._options.close_timeout_s if timeout_s is None else timeout_s
        if not self._closing:
            self._closing = True
            self._budget = CloseBudget.starting_now(wait)
        if self._task is not None:
            async with self._changed:
                self._changed.notify_all()
            try:
                remaining = max(0.0, self._budget.deadline - time.monotonic())
                await asyncio.wait_for(asyncio.shield(self._task), remaining + 1.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                lost = len(self._buffer) + self._in_flight
                if lost:
                    self._counters.add(dropped=lost)
                    log.error("close timed out: %d events not sent", lost)
                self._buffer.clear()
                self._in_flight = 0
        await self._channel.close()
        return self.stats()

    async def __aenter__(self) -> AsyncTracker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        lost = len(self._buffer) + self._in_flight
        if lost and not self._closing:
            log.error("AsyncTracker collected without close(): %d events not sent", lost)

    async def _next_batch(self) -> list[ingest_pb2.Event] | None:
        options = self._options
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._buffer) or self._closing)
            if not self._buffer:
                return None
            if len(self._buffer) < options.batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(options.flush_interval_s):
                        await self._changed.wait_for(
                            lambda: len(self._buffer) >= options.batch_size or self._closing
                        )
            count = min(options.batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(count)]
            self._in_flight = count
            self._changed.notify_all()
            return batch

    async def _run(self) -> None:
        while (batch := await self._next_batch()) is not None:
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the task die with events in hand
                self._counters.given_up(len(batch), exc)
            async with self._changed:
                self._in_flight = 0
                self._changed.notify_all()

    async def _send(self, batch: list[ingest_pb2.Event]) -> None:
        with self._tracer.start_as_current_span(
            "verdict.tracker.send",
            kind=trace.SpanKind.CLIENT,
            attributes={"verdict.events": len(batch)},
        ):
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[ingest_pb2.Event]) -> None:
        options = self._options
        request = ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=batch)
        for wait in options.backoff.delays():
            try:
                reply = await self._stub.TrackEvents(
                    request,
                    timeout=self._budget.rpc_timeout(options.deadline_s),
                    metadata=with_trace(options.metadata),
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    self._counters.given_up(len(batch), exc)
                    return
                if not self._budget.allows_wait(wait):
                    self._counters.add(dropped=len(batch))
                    log.error("close timed out: %d events not sent (%s)", len(batch), exc.code())
                    return
                self._counters.add(retried=len(batch))
                await asyncio.sleep(wait)
                continue
            self._counters.acknowledged(reply)
            return


_background: set[asyncio.Task[None]] = set()
