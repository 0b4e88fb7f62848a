"""Settings of the assignment service, read once at start by the platform's `EnvReader`."""

from __future__ import annotations

from dataclasses import dataclass

from verdict_platform.settings import EnvReader


@dataclass(frozen=True)
class AssignmentSettings:
    """Assignment configuration. Field docs name their environment variable."""

    config_poll_s: float = 2.0
    """VERDICT_CONFIG_POLL_S: how often the configuration version is polled in PostgreSQL, the
    fallback for when Redis pub/sub is down (changes normally arrive within a second)."""
    exposure_buffer: int = 100_000
    """VERDICT_EXPOSURE_BUFFER: exposures waiting to be sent to ingest; beyond it they are
    dropped (counted and logged) and recorded again at the unit's next assignment."""

    @classmethod
    def read(cls, r: EnvReader) -> AssignmentSettings:
        """Reads and validates the settings with the platform's reader."""
        return cls(
            config_poll_s=r.positive_float("VERDICT_CONFIG_POLL_S", cls.config_poll_s),
            exposure_buffer=r.integer("VERDICT_EXPOSURE_BUFFER", cls.exposure_buffer, 1),
        )
