"""In-memory fakes of the analysis ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis.alerts import NewAlert, StoredAlert
from verdict_analysis.metrics import CollectedStats, MetricSpec, Segment
from verdict_analysis.ports import StatsReader
from verdict_platform.errors import Aborted


class FakeCatalog:
    def __init__(
        self, experiments: list[experiment_pb2.Experiment], metrics: list[experiment_pb2.Metric]
    ) -> None:
        self.experiments = {e.key: e for e in experiments}
        self.definitions = {m.key: m for m in metrics}

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        return self.experiments.get(key)

    async def metrics(self, keys: Collection[str]) -> dict[str, experiment_pb2.Metric]:
        return {k: self.definitions[k] for k in keys if k in self.definitions}

    async def running_keys(self) -> list[str]:
        return [
            k
            for k, e in self.experiments.items()
            if e.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING
        ]


class FakeReader:
    def __init__(
        self, collected: CollectedStats, segments: Mapping[str, list[str]] | None = None
    ) -> None:
        self.collected = collected
        self.segments = segments or {}
        self.calls: list[Segment | None] = []

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
        self.calls.append(segment)
        # Like the adapter: diagnostics are counted for the whole population only.
        return self.collected if segment is None else replace(self.collected, diagnostics=None)

    async def segment_values(self, experiment_key: str, dimension: str) -> list[str]:
        return self.segments.get(dimension, [])


class FakeLocks:
    def __init__(self, reader: FakeReader) -> None:
        self.reader = reader
        self.held: set[str] = set()

    @contextlib.asynccontextmanager
    async def hold(self, experiment_key: str) -> AsyncIterator[StatsReader]:
        if experiment_key in self.held:
            raise Aborted("held")
        self.held.add(experiment_key)
        try:
            yield self.reader
        finally:
            self.held.discard(experiment_key)


class FakeSnapshots:
    def __init__(self) -> None:
        self.rows: list[analysis_pb2.ResultSnapshot] = []

    async def add(self, snapshot: analysis_pb2.ResultSnapshot) -> analysis_pb2.ResultSnapshot:
        stored = analysis_pb2.ResultSnapshot()
        stored.CopyFrom(snapshot)
        stored.id = len(self.rows) + 1
        self.rows.append(stored)
        return stored

    def _whole(self, key: str) -> list[analysis_pb2.ResultSnapshot]:
        return [s for s in self.rows if s.experiment_key == key and not s.HasField("segment")]

    async def latest(
        self, experiment_key: str, dimension: str = "", value: str = ""
    ) -> analysis_pb2.ResultSnapshot | None:
        match = [
            s
            for s in self.rows
            if s.experiment_key == experiment_key
            and (s.segment.dimension, s.segment.value) == (dimension, value)
        ]
        return match[-1] if match else None

    async def page(
        self, experiment_key: str, limit: int, before_id: int | None = None
    ) -> list[analysis_pb2.ResultSnapshot]:
        rows = [
            s
            for s in reversed(self._whole(experiment_key))
            if before_id is None or s.id < before_id
        ]
        return rows[:limit]

    async def newer(self, experiment_key: str, after_id: int) -> list[analysis_pb2.ResultSnapshot]:
        return [s for s in self._whole(experiment_key) if s.id > after_id]

    async def segments(
        self, experiment_key: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        pairs = sorted(
            {
                (s.segment.dimension, s.segment.value)
                for s in self.rows
                if s.experiment_key == experiment_key and s.HasField("segment")
            }
        )
        return [p for p in pairs if after is None or p > after][:limit]

    async def latest_time(self, experiment_key: str) -> datetime | None:
        rows = self._whole(experiment_key)
        return (
            rows[-1].create_time.ToDatetime() if rows and rows[-1].HasField("create_time") else None
        )


class FakePublisher:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def published(self, experiment_key: str) -> None:
        self.keys.append(experiment_key)


class FakeStopper:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def stop(
        self,
        experiment_key: str,
        reason: str,
        decision: common_pb2.Decision.ValueType,
        ship_variant_key: str,
        details: Mapping[str, Any],
        rule: experiment_pb2.StoppingRule.ValueType,
    ) -> None:
        self.calls.append(
            {
                "key": experiment_key,
                "reason": reason,
                "decision": decision,
                "ship": ship_variant_key,
                "details": dict(details),
                "rule": rule,
            }
        )


class FakeAlertLog:
    """The `AlertLog` port in memory, with the store's dedup semantics (key, open episodes)."""

    def __init__(self) -> None:
        self.raised: list[NewAlert] = []
        self._keys: set[str] = set()
        self._open: dict[tuple[str, str], int] = {}
        self._episodes = 0

    def _store(self, alert: NewAlert) -> StoredAlert | None:
        if alert.dedup_key in self._keys:
            return None
        self._keys.add(alert.dedup_key)
        self.raised.append(alert)
        return StoredAlert(len(self.raised), alert, datetime.now(UTC))

    async def raise_once(self, alert: NewAlert) -> StoredAlert | None:
        return self._store(alert)

    async def raise_firing(
        self, experiment_key: str, firing: Sequence[NewAlert]
    ) -> list[StoredAlert]:
        rules = {a.rule for a in firing}
        for key in [k for k in self._open if k[0] == experiment_key and k[1] not in rules]:
            del self._open[key]
        out = []
        for alert in firing:
            if (experiment_key, alert.rule) in self._open:
                continue
            self._episodes += 1
            self._open[experiment_key, alert.rule] = self._episodes
            stored = self._store(replace(alert, dedup_key=f"episode-{self._episodes}"))
            assert stored is not None
            out.append(stored)
        return out

    async def claim_due(self, limit: int, lease_s: float) -> list[StoredAlert]:
        return []

    async def record_delivery(self, alert_id: int, error: str, retry_at: datetime | None) -> None:
        return None

    async def page(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> list[StoredAlert]:
        return []
