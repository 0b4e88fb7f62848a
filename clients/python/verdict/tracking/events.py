"""Building events: a fresh UUID and the current time unless given."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from verdict.v1 import ingest_pb2


def new_event(
    unit_id: str,
    name: str,
    measures: Mapping[str, float] | None = None,
    properties: Mapping[str, str] | None = None,
    *,
    timestamp: float | None = None,
    event_id: str | None = None,
) -> ingest_pb2.Event:
    """An Event; `timestamp` in seconds since the epoch (default now), `event_id` a UUID."""
    event = ingest_pb2.Event(
        event_id=event_id or str(uuid.uuid4()),
        unit_id=unit_id,
        name=name,
        measures=measures or {},
        properties=properties or {},
    )
    nanos = time.time_ns() if timestamp is None else int(timestamp * 1e9)
    event.timestamp.seconds, event.timestamp.nanos = divmod(nanos, 1_000_000_000)
    return event
