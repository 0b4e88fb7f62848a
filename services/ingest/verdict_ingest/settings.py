"""Settings of the ingest service, read once from the environment into a frozen object.

The platform's `Settings` holds what every service shares; these are the ingest-only knobs, read
by the platform's `EnvReader`. An invalid value raises `SettingsError` naming the variable, so
the process fails at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from verdict_platform.settings import EnvReader, SettingsError

DAY_S = 86_400


@dataclass(frozen=True)
class IngestSettings:
    """Ingest configuration. Field docs name their environment variable."""

    max_batch: int = 5000
    """VERDICT_INGEST_MAX_BATCH: most events (or exposures) in one request message."""
    max_batch_bytes: int = 8 * 1024 * 1024
    """VERDICT_INGEST_MAX_BATCH_BYTES: largest serialized batch (INVALID_ARGUMENT above it)."""
    queue_events: int = 50_000
    """VERDICT_INGEST_QUEUE_EVENTS: events waiting or being written; RESOURCE_EXHAUSTED beyond."""
    write_events: int = 20_000
    """VERDICT_INGEST_WRITE_EVENTS: most events a writer combines into one transaction."""
    writers: int = 2
    """VERDICT_INGEST_WRITERS: concurrent writer connections (each writes whole transactions)."""
    past_window_s: int = 7 * DAY_S
    """VERDICT_INGEST_PAST_WINDOW_S: how old an event's timestamp may be (default 7 days)."""
    future_window_s: int = 300
    """VERDICT_INGEST_FUTURE_WINDOW_S: how far ahead of the server clock it may be (5 minutes)."""
    retention_days: int = 90
    """VERDICT_EVENT_RETENTION_DAYS: event partitions older than this many days are dropped."""
    otlp_unit_attributes: tuple[str, ...] = ("enduser.id", "user.id")
    """VERDICT_OTLP_UNIT_ATTRIBUTES: span (or resource) attributes holding the unit id of a GenAI
    span, comma-separated, the first present wins."""

    @classmethod
    def read(cls, r: EnvReader) -> IngestSettings:
        """Reads and validates the settings with the platform's reader."""
        d = cls()
        s = cls(
            max_batch=r.integer("VERDICT_INGEST_MAX_BATCH", d.max_batch, 1),
            max_batch_bytes=r.integer("VERDICT_INGEST_MAX_BATCH_BYTES", d.max_batch_bytes, 1024),
            queue_events=r.integer("VERDICT_INGEST_QUEUE_EVENTS", d.queue_events, 1),
            write_events=r.integer("VERDICT_INGEST_WRITE_EVENTS", d.write_events, 1),
            writers=r.integer("VERDICT_INGEST_WRITERS", d.writers, 1),
            past_window_s=r.integer("VERDICT_INGEST_PAST_WINDOW_S", d.past_window_s, 0),
            future_window_s=r.integer("VERDICT_INGEST_FUTURE_WINDOW_S", d.future_window_s, 0),
            retention_days=r.integer("VERDICT_EVENT_RETENTION_DAYS", d.retention_days, 1),
            otlp_unit_attributes=_names(r, "VERDICT_OTLP_UNIT_ATTRIBUTES", d.otlp_unit_attributes),
        )
        if s.queue_events < s.max_batch:
            raise SettingsError(
                "VERDICT_INGEST_QUEUE_EVENTS", "must be at least VERDICT_INGEST_MAX_BATCH"
            )
        if s.retention_days * DAY_S <= s.past_window_s:
            raise SettingsError(
                "VERDICT_EVENT_RETENTION_DAYS",
                "must exceed VERDICT_INGEST_PAST_WINDOW_S, or accepted events would be dropped",
            )
        return s

    @property
    def past_window_days(self) -> int:
        """The past window in whole days, rounded up (partitions to keep ready behind today)."""
        return -(-self.past_window_s // DAY_S)


def _names(r: EnvReader, variable: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = r.text(variable)
    if raw is None:
        return default
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if not names:
        raise SettingsError(variable, "must name at least one attribute")
    return names
