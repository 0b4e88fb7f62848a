"""Settings of the analysis service, read once at start by the platform's `EnvReader`."""

from __future__ import annotations

from dataclasses import dataclass

from verdict_platform.settings import EnvReader


@dataclass(frozen=True)
class AnalysisSettings:
    """Analysis configuration. Field docs name their environment variable."""

    interval_s: float = 60.0
    """VERDICT_ANALYSIS_INTERVAL: seconds between scheduled analyses of a running experiment."""
    alert_webhook_url: str | None = None
    """VERDICT_ALERT_WEBHOOK_URL: where stopping-rule alerts are POSTed as JSON (unset: alerts
    are stored and logged, not delivered)."""

    @classmethod
    def read(cls, r: EnvReader) -> AnalysisSettings:
        """Reads and validates the settings with the platform's reader."""
        return cls(
            interval_s=r.positive_float("VERDICT_ANALYSIS_INTERVAL", cls.interval_s),
            alert_webhook_url=r.url("VERDICT_ALERT_WEBHOOK_URL", ("http", "https")),
        )
