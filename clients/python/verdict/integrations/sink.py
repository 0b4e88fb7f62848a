"""Handing events to a `Tracker` or an `AsyncTracker` without ever blocking or raising.

The gateway's callback and feedback helper run on a call's path: they offer the event and go
on. A full buffer or a closed tracker costs the event (counted, warned once a minute), never
the call.
"""

from __future__ import annotations

import asyncio
import logging

from verdict.integrations.throttled_log import ThrottledLog
from verdict.tracking import AsyncTracker, Tracker
from verdict.tracking.options import BufferFull
from verdict.v1 import ingest_pb2

log = logging.getLogger(__name__)


class EventSink:
    """Offers events to a tracker: `Tracker` from any thread; `AsyncTracker` from its loop, or
    from other threads once it has been used in its loop (the event is handed over to it)."""

    def __init__(self, tracker: Tracker | AsyncTracker) -> None:
        self.tracker = tracker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = ThrottledLog(log)
        self.lost = 0
        """Events not accepted by the tracker (full, closed, or no loop to hand them to)."""

    def submit(self, event: ingest_pb2.Event) -> bool:
        """Offers the event; True when the tracker took it (or it was handed to its loop)."""
        tracker = self.tracker
        if isinstance(tracker, Tracker):
            return self._offer(tracker.track_event, event)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (self._loop is None or loop is self._loop):
            self._loop = loop
            return self._offer(tracker.track_nowait, event)
        if self._loop is None or self._loop.is_closed():
            self.lost += 1
            self._log.warning("event dropped: an AsyncTracker needs to be used in its loop first")
            return False
        self._loop.call_soon_threadsafe(self._offer, tracker.track_nowait, event)
        return True

    def _offer(self, track: object, event: ingest_pb2.Event) -> bool:
        try:
            track(event)  # type: ignore[operator]
        except (BufferFull, RuntimeError) as exc:
            self.lost += 1
            self._log.warning("event dropped by the tracker: %s", type(exc).__name__)
            return False
        return True
