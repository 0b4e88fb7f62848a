"""The ports the use cases depend on, as Protocols, and the audit entry value (pure).

`repository.PostgresConfigStore` and `publisher.RedisConfigPublisher` implement them for real; the
unit tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from verdict.v1 import experiment_pb2

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""


@dataclass(frozen=True)
class AuditEntry:
    """One change in the audit log."""

    action: str
    """e.g. "experiment.created", "experiment.stopped", "metric.created", "saved_group.put"."""
    actor: str
    """The API key's name."""
    at: datetime
    experiment_key: str = ""
    """Empty for catalog changes (metrics, saved groups)."""
    changes: Mapping[str, Any] = field(default_factory=dict)
    """Field path to {"before", "after"}, plus e.g. "details" for automated stops."""
    reason: str = ""
    id: int = 0
    """Assigned by the store; increasing with time."""
    rule: str = ""
    """The stopping rule behind an automated change (`StoppingRule` name); empty for a
    person's."""


class ConfigWrites(Protocol):
    """Writes inside one transaction: all of them commit together or none does."""

    async def experiment_for_update(self, key: str) -> experiment_pb2.Experiment | None:
        """The stored experiment, locked until commit; None when unknown."""
        ...

    async def experiment_for_share(self, key: str) -> experiment_pb2.Experiment | None:
        """The stored experiment, kept from changing until commit (e.g. the holdout a change
        depends on); None when unknown."""
        ...

    async def experiments_naming_holdout(self, key: str) -> list[str]:
        """The keys of the experiments, not archived, whose `holdout_key` is `key`."""
        ...

    async def insert_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> bool:
        """Stores a new experiment (and its first version); False when the key is taken."""
        ...

    async def save_experiment(self, experiment: experiment_pb2.Experiment, actor: str) -> None:
        """Replaces a stored experiment and records the new version."""
        ...

    async def known_metric_keys(self, keys: Collection[str]) -> set[str]:
        """The subset of `keys` present in the metric catalog."""
        ...

    async def insert_metric(self, metric: experiment_pb2.Metric) -> bool:
        """Adds a metric to the catalog; False when the key is taken."""
        ...

    async def metric_for_update(self, key: str) -> experiment_pb2.Metric | None:
        """The stored metric, locked until commit; None when unknown."""
        ...

    async def save_metric(self, metric: experiment_pb2.Metric) -> None:
        """Replaces a stored metric."""
        ...

    async def saved_group_keys(self) -> set[str]:
        """The keys of every saved group (conditions may only name these)."""
        ...

    async def saved_group_for_update(self, key: str) -> experiment_pb2.SavedGroup | None:
        """The stored saved group, locked until commit; None when unknown."""
        ...

    async def put_saved_group(self, group: experiment_pb2.SavedGroup) -> None:
        """Creates or replaces a saved group."""
        ...

    async def record(self, entry: AuditEntry) -> None:
        """Appends to the audit log."""
        ...

    async def bump_config_version(self) -> int:
        """Increments the configuration version the assignment snapshot follows; returns it."""
        ...

    async def snapshot_bytes(self) -> int:
        """Size of what the assignment snapshot holds, as seen by this transaction: the stored
        JSON of running and stopped experiments and of saved groups."""
        ...


class ConfigStore(Protocol):
    """Experiments, metrics, saved groups and the audit log, as stored."""

    def writes(self) -> AbstractAsyncContextManager[ConfigWrites]:
        """A transaction; commits when the block exits normally."""
        ...

    async def experiment(self, key: str) -> experiment_pb2.Experiment | None:
        """One experiment; None when unknown."""
        ...

    async def config_version(self) -> int:
        """The current configuration version (for a change that changed nothing)."""
        ...

    async def experiments(
        self,
        statuses: Collection[int],
        after: tuple[datetime, str] | None,
        limit: int,
        query: str = "",
    ) -> Sequence[experiment_pb2.Experiment]:
        """Experiments in `statuses` whose key or name contains `query` (ignoring case; empty:
        all), newest first (then by key), after the given position."""
        ...

    async def metric(self, key: str) -> experiment_pb2.Metric | None:
        """One metric; None when unknown."""
        ...

    async def metrics(self, after: str | None, limit: int) -> Sequence[experiment_pb2.Metric]:
        """Metrics by key, after the given key."""
        ...

    async def saved_groups(
        self, after: str | None, limit: int
    ) -> Sequence[experiment_pb2.SavedGroup]:
        """Saved groups by key, after the given key."""
        ...

    async def audit_entries(
        self, experiment_key: str, before_id: int | None, limit: int
    ) -> Sequence[AuditEntry]:
        """Audit entries newest first, of one experiment (or all when empty), before an id."""
        ...


class ConfigPublisher(Protocol):
    """Announces a committed configuration version to the assignment replicas."""

    async def publish(self, version: int) -> None:
        """Best effort: failures are logged, never raised."""
        ...
