"""The ports the analysis use cases depend on; adapters implement them, unit tests fake them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis.alerts import NewAlert, StoredAlert
from verdict_analysis.metrics.spec import CollectedStats, MetricSpec, Segment

Clock = Callable[[], datetime]
"""The current time, timezone-aware (UTC)."""


class Catalog(Protocol):
    """Experiments and metric definitions (read-only)."""

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None: ...

    async def metrics(self, keys: Collection[str]) -> dict[str, experiment_pb2.Metric]: ...

    async def running_keys(self) -> list[str]: ...


class SnapshotRepository(Protocol):
    """Stored snapshots."""

    async def add(self, snapshot: analysis_pb2.ResultSnapshot) -> analysis_pb2.ResultSnapshot: ...

    async def latest(
        self, experiment_key: str, dimension: str = "", value: str = ""
    ) -> analysis_pb2.ResultSnapshot | None: ...

    async def page(
        self, experiment_key: str, limit: int, before_id: int | None = None
    ) -> list[analysis_pb2.ResultSnapshot]: ...

    async def newer(
        self, experiment_key: str, after_id: int
    ) -> list[analysis_pb2.ResultSnapshot]: ...

    async def latest_time(self, experiment_key: str) -> datetime | None: ...

    async def segments(
        self, experiment_key: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """(dimension, value) pairs with a stored snapshot, in order, after `after`."""
        ...


class ResultsPublisher(Protocol):
    """Announces that a new snapshot of an experiment is stored."""

    async def published(self, experiment_key: str) -> None: ...


class StatsReader(Protocol):
    """Sufficient statistics of one experiment, read while its analysis lock is held."""

    async def collect(
        self,
        experiment_key: str,
        variant_keys: Sequence[str],
        control_key: str,
        metrics: Sequence[MetricSpec],
        *,
        cuped_lookback_s: float | None,
        segment: Segment | None,
        quantile_alpha: float,
    ) -> CollectedStats:
        """Per-variant statistics of the metrics (optionally for one segment)."""
        ...

    async def segment_values(self, experiment_key: str, dimension: str) -> list[str]:
        """The most frequent values of a segment dimension."""
        ...


class Locks(Protocol):
    """Takes an experiment's analysis lock; raises Aborted when another worker holds it."""

    def hold(self, experiment_key: str) -> contextlib.AbstractAsyncContextManager[StatsReader]:
        """The lock, and a reader on its connection, for the duration of the block."""
        ...


class Stopper(Protocol):
    """Stops an experiment with a decision and the figures behind it."""

    async def stop(
        self,
        experiment_key: str,
        reason: str,
        decision: common_pb2.Decision.ValueType,
        ship_variant_key: str,
        details: Mapping[str, Any],
        rule: experiment_pb2.StoppingRule.ValueType,
    ) -> None:
        """Stops it in the name of `rule`; FailedPrecondition when it is no longer running,
        Unavailable if down."""
        ...


class AlertLog(Protocol):
    """Stored alerts: raised once (deduplicated through the store, so restarts and replicas never
    repeat one), then delivered, with their delivery state."""

    async def raise_once(self, alert: NewAlert) -> StoredAlert | None:
        """Stores the alert unless one with its `dedup_key` exists; the stored alert, or None."""
        ...

    async def raise_firing(
        self, experiment_key: str, firing: Sequence[NewAlert]
    ) -> list[StoredAlert]:
        """For the alert-only rules firing now: stores an alert for each rule that was not
        already firing, and forgets the rules of the experiment that stopped firing (so they
        alert again if they fire again). Returns the alerts stored."""
        ...

    async def claim_due(self, limit: int, lease_s: float) -> list[StoredAlert]:
        """Alerts whose delivery attempt is due, each leased for `lease_s` to this caller."""
        ...

    async def record_delivery(self, alert_id: int, error: str, retry_at: datetime | None) -> None:
        """Records one attempt: delivered when `error` is empty, else failed with the next
        attempt at `retry_at` (None: given up)."""
        ...

    async def page(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> list[StoredAlert]:
        """Alerts newest first (of one experiment, or all when empty), ids below `before_id`."""
        ...


class AlertSender(Protocol):
    """Delivers one alert document (one attempt)."""

    async def post(self, document: Mapping[str, Any]) -> None:
        """Delivers it; raises `DeliveryFailed` (saying whether a retry may help)."""
        ...


class Signals(Protocol):
    """Announcements of stored snapshots."""

    def waiter(self, experiment_key: str) -> contextlib.AbstractContextManager[asyncio.Event]: ...


class ExposureCounts(Protocol):
    """Exposures counted per day, for the health chart."""

    async def daily(self, experiment_key: str) -> list[tuple[date, str, int]]:
        """(UTC day, variant key, units first exposed that day), oldest first; only days with
        exposures, at most the last year of them."""
        ...

    async def multiple_exposure_units(self, experiment_key: str) -> int:
        """Units of the experiment seen in more than one variant."""
        ...
