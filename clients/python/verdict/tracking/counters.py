"""Thread-safe counters shared by both tracker flavours, and how a reply updates them."""

from __future__ import annotations

import dataclasses
import logging
import threading

from verdict.tracking.options import TrackerStats
from verdict.v1 import ingest_pb2

log = logging.getLogger("verdict.tracking")


class Counters:
    """Mutable counters behind `TrackerStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = TrackerStats()

    def add(self, **deltas: int) -> None:
        """Adds to the named counters."""
        with self._lock:
            current = self._stats
            self._stats = dataclasses.replace(
                current, **{k: getattr(current, k) + v for k, v in deltas.items()}
            )

    def snapshot(self, buffered: int) -> TrackerStats:
        """The counters now, with the current buffer depth."""
        with self._lock:
            return dataclasses.replace(self._stats, buffered=buffered)

    def acknowledged(self, reply: ingest_pb2.TrackEventsResponse) -> None:
        """Counts a batch the service answered; logs its rejections."""
        self.add(
            sent=reply.accepted + reply.duplicates,
            duplicates=reply.duplicates,
            rejected=reply.rejected,
        )
        for r in reply.rejections[:10]:
            log.warning("event rejected: %s: %s", r.field, r.reason)

    def given_up(self, count: int, error: BaseException) -> None:
        """Counts a batch abandoned after a non-retryable error, and logs it."""
        self.add(failed=count)
        log.error("gave up on %d events: %s", count, error)
