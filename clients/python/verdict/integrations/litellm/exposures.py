"""Exposures of locally evaluated assignments, sent to `IngestService.TrackExposures`.

`AssignmentService.Assign` logs a unit's first assignment itself; local evaluation cannot, so a
gateway that assigns locally logs them here: each (experiment, unit) once per process (a
bounded memory of those sent; ingest keeps the first exposure anyway), batched from a
background thread, retried under the same request id. Never blocks the caller: when the buffer
is full, the exposure is dropped and counted (the next call of that unit offers it again).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid

import grpc

from verdict.channels import PLAINTEXT, RETRYABLE, ChannelSecurity, bearer, sync_channel
from verdict.retry import Backoff
from verdict.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger(__name__)

RETRIES = Backoff(initial_s=0.1, max_s=2.0, jitter=True)
MAX_ATTEMPTS = 6


class ExposureLog:
    """Sends exposures in the background; thread-safe."""

    def __init__(
        self,
        target: str,
        api_key: str | None,
        *,
        security: ChannelSecurity = PLAINTEXT,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        buffer_size: int = 10_000,
        remember: int = 100_000,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
    ) -> None:
        self._metadata = bearer(api_key)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._buffer_size = buffer_size
        self._remember = remember
        self._log = logger
        self._channel = sync_channel(target, security)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._buffer: collections.deque[ingest_pb2.Exposure] = collections.deque()
        self._sent: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()
        self._lock = threading.Condition()
        self._busy = 0
        self._closing = False
        self.dropped = 0
        """Exposures dropped: buffer full, or given up after retries."""
        self._thread = threading.Thread(target=self._run, name="verdict-exposures", daemon=True)
        self._thread.start()

    def record(
        self, experiment_key: str, variant_key: str, unit_id: str, allocation_version: int
    ) -> None:
        """Offers an exposure; returns at once (a unit already logged in that variant: no-op)."""
        key = (experiment_key, unit_id)
        with self._lock:
            if self._sent.get(key) == variant_key or self._closing:
                return
            if len(self._buffer) >= self._buffer_size:
                self.dropped += 1
                return
            self._sent[key] = variant_key
            self._sent.move_to_end(key)
            if len(self._sent) > self._remember:
                self._sent.popitem(last=False)
            exposure = ingest_pb2.Exposure(
                experiment_key=experiment_key,
                variant_key=variant_key,
                unit_id=unit_id,
                allocation_version=allocation_version,
            )
            exposure.timestamp.GetCurrentTime()
            self._buffer.append(exposure)
            if len(self._buffer) in (1, self._batch_size):
                self._lock.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Waits until what was offered so far is sent (or given up); False on timeout."""
        with self._lock:
            self._lock.notify_all()
            return self._lock.wait_for(lambda: not self._buffer and not self._busy, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Sends what is buffered (within `timeout_s`), then stops."""
        self.flush(timeout_s)
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout_s)
        self._channel.close()

    def _next_batch(self) -> list[ingest_pb2.Exposure] | None:
        with self._lock:
            self._lock.wait_for(lambda: bool(self._buffer) or self._closing)
            if self._closing:
                return None
            if len(self._buffer) < self._batch_size:
                self._lock.wait_for(
                    lambda: len(self._buffer) >= self._batch_size or self._closing,
                    self._flush_interval_s,
                )
            count = min(self._batch_size, len(self._buffer))
            self._busy = count
            return [self._buffer.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._send(batch)
            except Exception as exc:  # the thread must survive anything
                self.dropped += len(batch)
                self._log.warning("exposures not sent: %s", exc)
            with self._lock:
                self._busy = 0
                self._lock.notify_all()

    def _send(self, batch: list[ingest_pb2.Exposure]) -> None:
        request = ingest_pb2.TrackExposuresRequest(request_id=str(uuid.uuid4()), exposures=batch)
        waits = RETRIES.delays()
        for attempt in range(MAX_ATTEMPTS):
            try:
                reply = self._stub.TrackExposures(request, timeout=5.0, metadata=self._metadata)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                if code not in RETRYABLE or attempt == MAX_ATTEMPTS - 1:
                    self.dropped += len(batch)
                    self._log.warning("exposures not sent (%s)", code)
                    return
                time.sleep(next(waits))
                continue
            if reply.rejected:
                first = reply.rejections[0]
                self._log.warning(
                    "exposures rejected by ingest: %d (first: %s %s)",
                    reply.rejected,
                    first.field,
                    first.reason,
                )
            return
