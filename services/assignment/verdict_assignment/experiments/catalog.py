"""Use cases on the metric catalog, saved groups and the audit log."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.catalog_rules import validate_metric, validate_saved_group
from verdict_assignment.experiments.changes import as_json, diff
from verdict_assignment.experiments.paging import decode_token, encode_token, page_size
from verdict_assignment.experiments.ports import AuditEntry, Clock, ConfigPublisher, ConfigStore
from verdict_assignment.experiments.snapshot_budget import check_snapshot_budget
from verdict_platform.errors import AlreadyExists, InvalidArgument, NotFound


class Catalog:
    """Metrics, saved groups and the audit log."""

    def __init__(
        self,
        store: ConfigStore,
        publisher: ConfigPublisher,
        clock: Clock,
        max_snapshot_bytes: int | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._max_snapshot_bytes = max_snapshot_bytes

    async def create_metric(
        self, requested: experiment_pb2.Metric, actor: str
    ) -> experiment_pb2.Metric:
        """Adds a metric; InvalidArgument, AlreadyExists. Metrics do not affect assignment."""
        now = self._clock()
        metric = experiment_pb2.Metric()
        metric.CopyFrom(requested)
        metric.create_time.FromDatetime(now)
        validate_metric(metric).raise_if_any()
        async with self._store.writes() as writes:
            if not await writes.insert_metric(metric):
                raise AlreadyExists(f"metric {metric.key!r} exists already")
            await writes.record(
                AuditEntry("metric.created", actor, now, "", diff(None, as_json(metric)))
            )
        return metric

    async def update_metric(
        self, patch: experiment_pb2.Metric, mask: FieldMask, actor: str
    ) -> experiment_pb2.Metric:
        """Changes the masked fields of a metric; InvalidArgument, NotFound. Recorded in the
        audit log; metrics do not affect assignment, so no configuration version is bumped."""
        if not patch.key:
            raise InvalidArgument.of("metric.key", "is required")
        paths = metric_mask_paths(mask)
        async with self._store.writes() as writes:
            stored = await writes.metric_for_update(patch.key)
            if stored is None:
                raise NotFound(f"metric {patch.key!r} not found")
            updated = experiment_pb2.Metric()
            updated.CopyFrom(stored)
            FieldMask(paths=paths).MergeMessage(
                patch, updated, replace_message_field=True, replace_repeated_field=True
            )
            validate_metric(updated).raise_if_any()
            await writes.save_metric(updated)
            changes = diff(as_json(stored), as_json(updated))
            changes.setdefault("key", {"before": updated.key, "after": updated.key})
            await writes.record(AuditEntry("metric.updated", actor, self._clock(), "", changes))
        return updated

    async def metric(self, key: str) -> experiment_pb2.Metric:
        """One metric; InvalidArgument for an empty key, NotFound."""
        if not key:
            raise InvalidArgument.of("key", "is required")
        metric = await self._store.metric(key)
        if metric is None:
            raise NotFound(f"metric {key!r} not found")
        return metric

    async def metrics(self, size: int, token: str) -> tuple[list[experiment_pb2.Metric], str]:
        """One page of metrics by key, and the next page's token."""
        limit = page_size(size)
        position = decode_token(token, "metrics", "", (str,))
        rows = list(
            await self._store.metrics(None if position is None else str(position[0]), limit + 1)
        )
        page = rows[:limit]
        after = (page[-1].key,) if len(rows) > limit else None
        return page, encode_token("metrics", "", after)

    async def put_saved_group(
        self, requested: experiment_pb2.SavedGroup, actor: str
    ) -> tuple[experiment_pb2.SavedGroup, int]:
        """Creates or replaces a saved group; the assignment snapshot follows it. Returns the
        group and the configuration version that includes it."""
        validate_saved_group(requested).raise_if_any()
        now = self._clock()
        group = experiment_pb2.SavedGroup()
        group.CopyFrom(requested)
        group.update_time.FromDatetime(now)
        async with self._store.writes() as writes:
            before = await writes.saved_group_for_update(group.key)
            await writes.put_saved_group(group)
            changes = diff(None if before is None else as_json(before), as_json(group))
            # The group's key never changes on a replace; keep it so the entry names its subject.
            changes.setdefault("key", {"before": group.key, "after": group.key})
            await writes.record(AuditEntry("saved_group.put", actor, now, "", changes))
            version = await writes.bump_config_version()
            await check_snapshot_budget(writes, self._max_snapshot_bytes)
        await self._publisher.publish(version)
        return group, version

    async def saved_groups(
        self, size: int, token: str
    ) -> tuple[list[experiment_pb2.SavedGroup], str]:
        """One page of saved groups by key, and the next page's token."""
        limit = page_size(size)
        position = decode_token(token, "saved_groups", "", (str,))
        rows = list(
            await self._store.saved_groups(
                None if position is None else str(position[0]), limit + 1
            )
        )
        page = rows[:limit]
        after = (page[-1].key,) if len(rows) > limit else None
        return page, encode_token("saved_groups", "", after)

    async def audit_entries(
        self, experiment_key: str, size: int, token: str
    ) -> tuple[list[AuditEntry], str]:
        """One page of the audit log, newest first, and the next page's token."""
        limit = page_size(size)
        position = decode_token(token, "audit", experiment_key, (int,))
        before = None if position is None else int(position[0])
        rows = list(await self._store.audit_entries(experiment_key, before, limit + 1))
        page = rows[:limit]
        after = (page[-1].id,) if len(rows) > limit else None
        return page, encode_token("audit", experiment_key, after)


FIXED_METRIC_FIELDS = frozenset({"key", "create_time"})
"""What UpdateMetric may not change: the identity and the creation time."""


def metric_mask_paths(mask: FieldMask) -> list[str]:
    """The mask's paths, each a field of Metric that may change; InvalidArgument otherwise."""
    if not mask.paths:
        raise InvalidArgument.of("update_mask", "name at least one field to change")
    for path in mask.paths:
        if path.split(".", 1)[0] in FIXED_METRIC_FIELDS:
            raise InvalidArgument.of("update_mask", f"{path!r} cannot be updated")
        if not FieldMask(paths=[path]).IsValidForDescriptor(experiment_pb2.Metric.DESCRIPTOR):
            raise InvalidArgument.of("update_mask", f"{path!r} is not a field of Metric")
    return list(mask.paths)
