"""In-memory implementations of the ExperimentService ports, for unit tests of the use cases."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.ports import AuditEntry
from verdict_platform import config_codec


@dataclass
class State:
    """Everything the fake store holds; copied per transaction, swapped in on commit."""

    experiments: dict[str, experiment_pb2.Experiment] = field(default_factory=dict)
    metrics: dict[str, experiment_pb2.Metric] = field(default_factory=dict)
    groups: dict[str, experiment_pb2.SavedGroup] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    config_version: int = 1


class FakeWrites:
    def __init__(self, state: State) -> None:
        self.state = state

    async def experiment_for_update(self, key: str) -> experiment_pb2.Experiment | None:
        return self.state.experiments.get(key)

    async def experiment_for_share(self, key: str) -> experiment_pb2.Experiment | None:
        return self.state.experiments.get(key)

    async def experiments_naming_holdout(self, key: str) -> list[str]:
        return sorted(
            e.key
            for e in self.state.experiments.values()
            if e.holdout_key == key and e.status != experiment_pb2.EXPERIMENT_STATUS_ARCHIVED
        )

    async def insert_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> bool:
        if experiment.key in self.state.experiments:
            return False
        self.state.experiments[experiment.key] = experiment
        return True

    async def save_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> None:
        self.state.experiments[experiment.key] = experiment

    async def known_metric_keys(self, keys: Collection[str]) -> set[str]:
        return {k for k in keys if k in self.state.metrics}

    async def insert_metric(self, metric: experiment_pb2.Metric) -> bool:
        if metric.key in self.state.metrics:
            return False
        self.state.metrics[metric.key] = metric
        return True

    async def metric_for_update(self, key: str) -> experiment_pb2.Metric | None:
        return self.state.metrics.get(key)

    async def save_metric(self, metric: experiment_pb2.Metric) -> None:
        self.state.metrics[metric.key] = metric

    async def saved_group_keys(self) -> set[str]:
        return set(self.state.groups)

    async def saved_group_for_update(self, key: str) -> experiment_pb2.SavedGroup | None:
        return self.state.groups.get(key)

    async def put_saved_group(self, group: experiment_pb2.SavedGroup) -> None:
        self.state.groups[group.key] = group

    async def record(self, entry: AuditEntry) -> None:
        self.state.audit.append(replace(entry, id=len(self.state.audit) + 1))

    async def bump_config_version(self) -> int:
        self.state.config_version += 1
        return self.state.config_version

    async def snapshot_bytes(self) -> int:
        live = (
            experiment_pb2.EXPERIMENT_STATUS_RUNNING,
            experiment_pb2.EXPERIMENT_STATUS_STOPPED,
        )
        return sum(
            len(config_codec.experiment_spec(e).encode())
            for e in self.state.experiments.values()
            if e.status in live
        ) + sum(
            len(config_codec.saved_group_members(g).encode()) for g in self.state.groups.values()
        )


class FakeStore:
    """A ConfigStore whose transactions commit on success and roll back on error."""

    def __init__(self) -> None:
        self.state = State()

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[FakeWrites]:
        pending = copy.deepcopy(self.state)
        yield FakeWrites(pending)
        self.state = pending

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        return self.state.experiments.get(key)

    async def config_version(self) -> int:
        return self.state.config_version

    async def experiments(
        self,
        statuses: Collection[int],
        after: tuple[datetime, str] | None,
        limit: int,
        query: str = "",
    ) -> Sequence[experiment_pb2.Experiment]:
        def position(e: experiment_pb2.Experiment) -> tuple[datetime, str]:
            return (e.create_time.ToDatetime(tzinfo=UTC), e.key)

        rows = sorted(
            (
                e
                for e in self.state.experiments.values()
                if e.status in statuses and query.lower() in f"{e.key} {e.name}".lower()
            ),
            key=position,
            reverse=True,
        )
        return [e for e in rows if after is None or position(e) < after][:limit]

    async def metric(self, key: str) -> experiment_pb2.Metric | None:
        return self.state.metrics.get(key)

    async def metrics(self, after: str | None, limit: int) -> Sequence[experiment_pb2.Metric]:
        return [self.state.metrics[k] for k in sorted(self.state.metrics) if k > (after or "")][
            :limit
        ]

    async def saved_groups(
        self, after: str | None, limit: int
    ) -> Sequence[experiment_pb2.SavedGroup]:
        return [self.state.groups[k] for k in sorted(self.state.groups) if k > (after or "")][
            :limit
        ]

    async def audit_entries(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> Sequence[AuditEntry]:
        rows = [
            e
            for e in reversed(self.state.audit)
            if (not experiment_key or e.experiment_key == experiment_key)
            and (before_id is None or e.id < before_id)
        ]
        return rows[:limit]


class FakePublisher:
    """Records what was published."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish(self, version: int) -> None:
        self.published.append(version)


class TickingClock:
    """A clock that advances one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
