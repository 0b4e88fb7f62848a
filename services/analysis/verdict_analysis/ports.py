"""The ports the analysis use cases depend on; adapters implement them, unit tests fake them."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Protocol

from verdict.v1 import analysis_pb2, experiment_pb2

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
