"""Sending events to Verdict's IngestService from Python, in the background.

    from verdict.tracking import Tracker, TrackerOptions

    tracker = Tracker(TrackerOptions(target="ingest:50052", api_key=key))
    tracker.track("user-42", "llm.call", measures={"latency_ms": 812.0}, properties={...})
    tracker.close()  # or at exit: flushes what is buffered

`track` returns at once; events are batched (by size and time), sent with `TrackEvents`, and
retried with exponential backoff on UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED
(a retried batch is never counted twice: the service deduplicates by event id). The buffer is
bounded: when it is full, `track` blocks or raises `BufferFull`, by option; nothing is dropped
silently (events given up on are counted in `stats().failed` / `dropped` and logged).
`AsyncTracker` is the asyncio flavour.
"""

from verdict.tracking.async_tracker import AsyncTracker
from verdict.tracking.events import new_event
from verdict.tracking.options import BufferFull, TrackerOptions, TrackerStats, WhenFull
from verdict.tracking.sync_tracker import Tracker

__all__ = [
    "AsyncTracker",
    "BufferFull",
    "Tracker",
    "TrackerOptions",
    "TrackerStats",
    "WhenFull",
    "new_event",
]
