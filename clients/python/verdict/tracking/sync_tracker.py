"""`Tracker`: the thread-based flavour (a background thread batches and sends)."""

from __future__ import annotations

import atexit
import collections
import threading
import time
import uuid
import weakref
from collections.abc import Mapping

import grpc
from opentelemetry import trace

from verdict.channels import RETRYABLE, sync_channel
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


class Tracker:
    """Buffers events and sends them from a background thread; thread-safe."""

    def __init__(self, options: TrackerOptions) -> None:
        self._options = options
        self._buffer: collections.deque[ingest_pb2.Event] = collections.deque()
        self._in_flight = 0
        self._lock = threading.Condition()
        self._closing = False
        self._budget = CloseBudget()
        self._counters = Counters()
        self._channel = sync_channel(options.target, options.security, options.channel_options)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._tracer = options.tracer()
        self._thread = threading.Thread(target=self._run, name="verdict-tracker", daemon=True)
        self._thread.start()
        self._atexit = _close_at_exit(self)
        atexit.register(self._atexit)

    def track(
        self,
        unit_id: str,
        name: str,
        measures: Mapping[str, float] | None = None,
        properties: Mapping[str, str] | None = None,
        *,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> str:
        """Buffers one event and returns its id at once (blocks or raises only when full)."""
        event = new_event(
            unit_id, name, measures, properties, timestamp=timestamp, event_id=event_id
        )
        self.track_event(event)
        return event.event_id

    def track_event(self, event: ingest_pb2.Event) -> None:
        """Buffers a ready-made event."""
        options = self._options
        with self._lock:
            if self._closing:
                raise RuntimeError("tracker is closed")
            if len(self._buffer) >= options.buffer_size:
                if options.when_full is WhenFull.RAISE:
                    raise BufferFull(f"{len(self._buffer)} events buffered")
                room = self._lock.wait_for(
                    lambda: len(self._buffer) < options.buffer_size or self._closing,
                    options.block_timeout_s,
                )
                if not room or self._closing:
                    raise BufferFull(f"no room within {options.block_timeout_s} s")
            self._buffer.append(event)
            self._counters.add(tracked=1)
            if len(self._buffer) in (1, options.batch_size):  # wake the sender
                self._lock.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Waits until everything tracked so far is sent (or given up); False on timeout."""
        with self._lock:
            self._lock.notify_all()
            return self._lock.wait_for(lambda: not self._buffer and self._in_flight == 0, timeout_s)

    def stats(self) -> TrackerStats:
        """The counters now."""
        with self._lock:
            buffered = len(self._buffer) + self._in_flight
        return self._counters.snapshot(buffered)

    def close(self, timeout_s: float | None = None) -> TrackerStats:
        """Sends what is buffered, retrying, for at most `timeout_s` (default close_timeout_s),
        then stops; what is not acknowledged by then is counted as dropped and logged. The same
        promise as `AsyncTracker.close`."""
        wait = self._options.close_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if not self._closing:
                self._closing = True
                self._budget = CloseBudget.starting_now(wait)
            self._lock.notify_all()
        self._thread.join(max(0.0, self._budget.deadline - time.monotonic()) + 1.0)
        with self._lock:
            lost = len(self._buffer)
            self._buffer.clear()
        if lost:
            self._counters.add(dropped=lost)
            log.error("close timed out: %d events not sent", lost)
        atexit.unregister(self._atexit)
        self._channel.close()
        return self.stats()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_batch(self) -> list[ingest_pb2.Event] | None:
        options = self._options
        with self._lock:
            if not self._buffer:
                self._lock.wait_for(lambda: bool(self._buffer) or self._closing)
            if not self._buffer:
                return None  # closing and empty
            if len(self._buffer) < options.batch_size and not self._closing:
                self._lock.wait_for(
                    lambda: len(self._buffer) >= options.batch_size or self._closing,
                    options.flush_interval_s,
                )
            count = min(options.batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(count)]
            self._in_flight = count
            self._lock.notify_all()  # room for blocked track() calls
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._send(batch)
            except Exception as exc:  # never let the thread die with events in hand
                self._counters.given_up(len(batch), exc)
            with self._lock:
                self._in_flight = 0
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _send(self, batch: list[ingest_pb2.Event]) -> None:
        with self._tracer.start_as_current_span(
            "verdict.tracker.send",
            kind=trace.SpanKind.CLIENT,
            attributes={"verdict.events": len(batch)},
        ):
            self._send_batch(batch)

    def _send_batch(self, batch: list[ingest_pb2.Event]) -> None:
        options = self._options
        request = ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=batch)
        for wait in options.backoff.delays():
            try:
                reply = self._stub.TrackEvents(
                    request,
                    timeout=self._budget.rpc_timeout(options.deadline_s),
                    metadata=with_trace(options.metadata),
                )
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if code not in RETRYABLE:
                    self._counters.given_up(len(batch), exc)
                    return
                if not self._budget.allows_wait(wait):
                    self._counters.add(dropped=len(batch))
                    log.error("close timed out: %d events not sent (%s)", len(batch), code)
                    return
                self._counters.add(retried=len(batch))
                time.sleep(wait)
                continue
            self._counters.acknowledged(reply)
            return


def _close_at_exit(tracker: Tracker) -> collections.abc.Callable[[], None]:
    ref = weakref.ref(tracker)

    def close() -> None:
        t = ref()
        if t is not None:
            t.close()

    return close
