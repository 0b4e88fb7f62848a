"""The read side: latest results, the time series, and the live stream of new snapshots."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_analysis.alerts import StoredAlert
from verdict_analysis.ports import AlertLog, Catalog, ExposureCounts, Signals, SnapshotRepository
from verdict_platform.errors import InvalidArgument, NotFound

POLL_S = 0.5
"""Fallback poll of the snapshot table while no announcement arrives (Redis may be down)."""
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def page_size(requested: int) -> int:
    """0 means 100; outside 1..1000 is INVALID_ARGUMENT."""
    if requested == 0:
        return DEFAULT_PAGE
    if not 1 <= requested <= MAX_PAGE:
        raise InvalidArgument.of("page_size", f"must be between 1 and {MAX_PAGE} (0: default)")
    return requested


def _before_id(token: str) -> int | None:
    if not token:
        return None
    try:
        value = int(token)
    except ValueError:
        raise InvalidArgument.of("page_token", "not a token from a previous response") from None
    if value <= 0:
        raise InvalidArgument.of("page_token", "not a token from a previous response")
    return value


def _segment_token(after: tuple[str, str]) -> str:
    raw = json.dumps(["segments", *after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _segment_position(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or value[0] != "segments"
        or not all(isinstance(v, str) for v in value[1:])
    ):
        raise InvalidArgument.of("page_token", "not a token from a previous response")
    return value[1], value[2]


def require_key(key: str) -> str:
    """The experiment key, or INVALID_ARGUMENT when empty."""
    if not key:
        raise InvalidArgument.of("experiment_key", "is required")
    return key


@dataclass(frozen=True)
class ExposureTimeline:
    """Units first exposed per UTC day and variant, every day from the first to the last."""

    days: list[tuple[date, dict[str, int]]]
    planned_shares: Mapping[str, float]
    multiple_exposure_units: int


class Results:
    """Reads of stored snapshots, exposure counts and alerts."""

    def __init__(
        self,
        catalog: Catalog,
        snapshots: SnapshotRepository,
        signals: Signals,
        exposures: ExposureCounts,
        alerts: AlertLog,
    ) -> None:
        self._catalog = catalog
        self._snapshots = snapshots
        self._signals = signals
        self._exposures = exposures
        self._alerts = alerts

    async def alerts(self, key: str, size: int, token: str) -> tuple[list[StoredAlert], str]:
        """One page of alerts, newest first (of one experiment, or all when `key` is empty)."""
        limit = page_size(size)
        before = _before_id(token)
        rows = await self._alerts.page(key, before, limit + 1)
        if len(rows) > limit:
            return rows[:limit], str(rows[limit - 1].id)
        return rows, ""

    async def _known(self, key: str) -> experiment_pb2.Experiment:
        experiment = await self._catalog.experiment(require_key(key))
        if experiment is None:
            raise NotFound(f"experiment {key!r} not found")
        return experiment

    async def exposure_timeline(self, key: str) -> ExposureTimeline:
        """Exposures per day and variant (days without any filled with zeros), the planned split
        and the units excluded for multiple exposures; NotFound for an unknown experiment."""
        experiment = await self._known(key)
        variant_keys = [v.key for v in experiment.variants]
        counts = await self._exposures.daily(key)
        by_day: dict[date, dict[str, int]] = {}
        for day, variant_key, units in counts:
            by_day.setdefault(day, dict.fromkeys(variant_keys, 0))[variant_key] = units
        days: list[tuple[date, dict[str, int]]] = []
        if by_day:
            day, last = min(by_day), max(by_day)
            while day <= last:
                days.append((day, by_day.get(day, dict.fromkeys(variant_keys, 0))))
                day += timedelta(days=1)
        return ExposureTimeline(
            days=days,
            planned_shares={v.key: v.weight for v in experiment.variants},
            multiple_exposure_units=await self._exposures.multiple_exposure_units(key),
        )

    async def latest(
        self, key: str, dimension: str = "", value: str = ""
    ) -> analysis_pb2.ResultSnapshot:
        """The latest snapshot; NotFound for an unknown experiment or no snapshot yet."""
        await self._known(key)
        if bool(dimension) != bool(value):
            raise InvalidArgument.of("segment", "needs both dimension and value")
        snapshot = await self._snapshots.latest(key, dimension, value)
        if snapshot is None:
            raise NotFound(f"no snapshot of {key!r} yet")
        return snapshot

    async def page(
        self, key: str, size: int, token: str
    ) -> tuple[list[analysis_pb2.ResultSnapshot], str]:
        """One page, newest first, and the next page's token ("" on the last page)."""
        limit = page_size(size)
        before = _before_id(token)
        await self._known(key)
        rows = await self._snapshots.page(key, limit + 1, before)
        if len(rows) > limit:
            return rows[:limit], str(rows[limit - 1].id)
        return rows, ""

    async def segments(
        self, key: str, size: int, token: str
    ) -> tuple[list[analysis_pb2.Segment], str]:
        """One page of the segments with a stored snapshot, and the next page's token."""
        limit = page_size(size)
        after = _segment_position(token)
        await self._known(key)
        rows = await self._snapshots.segments(key, after, limit + 1)
        page = [analysis_pb2.Segment(dimension=d, value=v) for d, v in rows[:limit]]
        return page, _segment_token(rows[limit - 1]) if len(rows) > limit else ""

    async def watch(self, key: str) -> AsyncIterator[analysis_pb2.ResultSnapshot]:
        """The latest snapshot at once (if any), then each new one as it is stored."""
        await self._known(key)
        with self._signals.waiter(key) as event:
            last = await self._snapshots.latest(key)
            last_id = 0
            if last is not None:
                last_id = last.id
                yield last
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), POLL_S)
                event.clear()
                for snapshot in await self._snapshots.newer(key, last_id):
                    last_id = snapshot.id
                    yield snapshot
