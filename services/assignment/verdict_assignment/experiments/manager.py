"""Use cases on experiments: create, read, list, update, start, stop, archive.

Each change runs in one transaction that stores the experiment and its version, appends to the
audit log and bumps the configuration version; after commit the new version is published so
that assignment replicas reload, and returned (`Committed.config_version`) so that the caller can
ask any replica for an answer at least that recent (AssignRequest.min_config_version).

Beyond each experiment's own rules (`experiment_rules`), a change is checked against what it
depends on: a live experiment must be able to enrol someone (`enrolment`), and holdouts and the
experiments naming them follow `holdouts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments import holdouts, lifecycle
from verdict_assignment.experiments.changes import as_json, diff
from verdict_assignment.experiments.enrolment import refuse_enrolling_nobody
from verdict_assignment.experiments.experiment_rules import validate_experiment
from verdict_assignment.experiments.paging import (
    decode_token,
    encode_token,
    page_size,
    parse_time_position,
    time_position,
)
from verdict_assignment.experiments.ports import (
    AuditEntry,
    Clock,
    ConfigPublisher,
    ConfigStore,
    ConfigWrites,
)
from verdict_assignment.experiments.snapshot_budget import check_snapshot_budget
from verdict_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

Experiment = experiment_pb2.Experiment

LIVE = (
    experiment_pb2.EXPERIMENT_STATUS_RUNNING,
    experiment_pb2.EXPERIMENT_STATUS_STOPPED,
)
"""Statuses in the assignment snapshot."""

NOT_ARCHIVED = (
    experiment_pb2.EXPERIMENT_STATUS_DRAFT,
    experiment_pb2.EXPERIMENT_STATUS_RUNNING,
    experiment_pb2.EXPERIMENT_STATUS_STOPPED,
)


@dataclass(frozen=True)
class Committed:
    """An experiment as a change left it, and the configuration version that includes it."""

    experiment: Experiment
    config_version: int


@dataclass(frozen=True)
class StopCommand:
    """What StopExperiment asks for."""

    key: str
    reason: str
    decision: int
    ship_variant_key: str = ""
    details: Mapping[str, Any] | None = None
    """Rule figures behind an automated stop, kept in the audit entry's changes."""
    rule: int = 0
    """The stopping rule of an automated stop (`StoppingRule`); 0 for a person's."""


@dataclass(frozen=True)
class StartCommand:
    """What StartExperiment asks for."""

    key: str
    reason: str = ""
    rule_overrides: Sequence[experiment_pb2.RuleOverride] = ()


def _require_key(key: str) -> None:
    if not key:
        raise InvalidArgument.of("key", "is required")


def _require_key_of(patch: Experiment) -> None:
    if not patch.key:
        raise InvalidArgument.of("experiment.key", "names the experiment to update; required")


class ExperimentManager:
    """The experiment use cases over a store, a publisher and a clock."""

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

    async def _known_metrics(self, writes: ConfigWrites, experiment: Experiment) -> set[str]:
        return await writes.known_metric_keys({m.metric_key for m in experiment.metrics})

    async def _validate(self, writes: ConfigWrites, experiment: Experiment) -> None:
        """InvalidArgument naming every field of `experiment` (a request's `experiment`) that
        breaks its rules, including a `holdout_key` that names no usable holdout."""
        known = await self._known_metrics(writes, experiment)
        groups = await writes.saved_group_keys()
        v = validate_experiment(experiment, known, known_groups=groups)
        key = experiment.holdout_key
        if key and not any(item.field == "experiment.holdout_key" for item in v.items):
            problem = holdouts.reference_problem(key, await writes.experiment_for_share(key))
            if problem is not None:
                v.add("experiment.holdout_key", problem)
        v.raise_if_any()

    async def create(self, requested: Experiment, actor: str) -> Committed:
        """Stores a new experiment in DRAFT; InvalidArgument, AlreadyExists."""
        now = self._clock()
        experiment = lifecycle.new_experiment(requested, now)
        async with self._store.writes() as writes:
            await self._validate(writes, experiment)
            if not await writes.insert_experiment(experiment, actor):
                raise AlreadyExists(f"experiment {experiment.key!r} exists already")
            changes = diff(None, as_json(experiment))
            version = await self._commit(
                writes, AuditEntry("experiment.created", actor, now, experiment.key, changes)
            )
        await self._publisher.publish(version)
        return Committed(experiment, version)

    async def get(self, key: str) -> Experiment:
        """One experiment; InvalidArgument for an empty key, NotFound."""
        _require_key(key)
        experiment = await self._store.experiment(key)
        if experiment is None:
            raise NotFound(f"experiment {key!r} not found")
        return experiment

    async def list_page(
        self, status: int, size: int, token: str, query: str = ""
    ) -> tuple[list[Experiment], str]:
        """One page, newest first, of experiments in `status` whose key or name contains `query`
        (ignoring case), and the next page's token ("" on the last page)."""
        if (
            status not in lifecycle.STATUS_NAMES
            and status != experiment_pb2.EXPERIMENT_STATUS_UNSPECIFIED
        ):
            raise InvalidArgument.of("status", "unknown status")
        limit = page_size(size)
        query = query.strip()
        if len(query) > 200:
            raise InvalidArgument.of("query", "must be at most 200 characters")
        filter_ = f"status={status};query={query}"
        position = decode_token(token, "experiments", filter_, (str, str))
        after = None if position is None else (parse_time_position(position[0]), str(position[1]))
        statuses = (
            NOT_ARCHIVED if status == experiment_pb2.EXPERIMENT_STATUS_UNSPECIFIED else (status,)
        )
        rows = list(await self._store.experiments(statuses, after, limit + 1, query))
        page, more = rows[:limit], len(rows) > limit
        next_token = ""
        if more:
            last = page[-1]
            created = time_position(last.create_time.ToDatetime(tzinfo=UTC))
            next_token = encode_token("experiments", filter_, (created, last.key))
        return page, next_token

    async def update(
        self, patch: Experiment, mask: FieldMask, expected_version: int, actor: str
    ) -> Committed:
        """Applies the masked fields; see `lifecycle.apply_update` for what may change when.
        An experiment that has left DRAFT may not become one that enrols nobody, and a running
        one moves only under a running holdout (FailedPrecondition, naming the field)."""
        _require_key_of(patch)
        paths = lifecycle.mask_paths(mask)

        def change(stored: Experiment) -> Experiment:
            if expected_version and stored.version != expected_version:
                raise FailedPrecondition(
                    f"experiment {stored.key!r} is at version {stored.version}, "
                    f"not {expected_version}: reload it and retry"
                )
            return lifecycle.apply_update(stored, patch, paths, self._clock())

        async def check(writes: ConfigWrites, stored: Experiment, updated: Experiment) -> None:
            await self._validate(writes, updated)
            if stored.holdout != updated.holdout:
                named = await writes.experiments_naming_holdout(stored.key)
                holdouts.check_holdout_change(stored, updated, named, "experiment.")
            if updated.status != experiment_pb2.EXPERIMENT_STATUS_DRAFT:
                refuse_enrolling_nobody(
                    updated, "update the live experiment", "experiment.", before=stored
                )
            moved = updated.holdout_key != stored.holdout_key
            if moved and updated.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING:
                await self._refuse_unless_holdout_runs(
                    writes, updated, "update the running experiment", "experiment."
                )

        return await self._change(patch.key, "experiment.updated", actor, change, check=check)

    async def _refuse_unless_holdout_runs(
        self, writes: ConfigWrites, experiment: Experiment, action: str, prefix: str
    ) -> None:
        key = experiment.holdout_key
        holdout = await writes.experiment_for_share(key) if key else None
        holdouts.refuse_unless_holdout_runs(experiment, holdout, action, prefix)

    async def start(self, command: StartCommand, actor: str) -> Committed:
        """Starts a DRAFT experiment or restarts a STOPPED one (see `lifecycle.start` for the
        rule overrides a restart records). FailedPrecondition, naming the field, for an
        experiment that would enrol nobody or whose holdout is not running."""
        _require_key(command.key)

        def change(stored: Experiment) -> Experiment:
            return lifecycle.start(
                stored,
                self._clock(),
                reason=command.reason,
                overrides=command.rule_overrides,
                actor=actor,
            )

        async def check(writes: ConfigWrites, stored: Experiment, started: Experiment) -> None:
            refuse_enrolling_nobody(started, "start")
            await self._refuse_unless_holdout_runs(writes, started, "start", "")

        return await self._change(
            command.key, "experiment.started", actor, change, reason=command.reason, check=check
        )

    async def stop(self, command: StopCommand, actor: str) -> Committed:
        """Stops a RUNNING experiment, or overrides a STOPPED one's decision."""
        _require_key(command.key)
        lifecycle.check_stop_request(command.reason, command.decision)
        if command.rule not in experiment_pb2.StoppingRule.values():
            raise InvalidArgument.of("rule", f"{command.rule} is not a stopping rule")

        details = None
        if command.details:
            details = Struct()
            details.update(dict(command.details))

        def change(stored: Experiment) -> Experiment:
            return lifecycle.stop(
                stored,
                reason=command.reason,
                decision=command.decision,
                ship_variant_key=command.ship_variant_key,
                actor=actor,
                now=self._clock(),
                rule=command.rule,
                details=details,
            )

        extra = {"details": dict(command.details)} if command.details else {}
        rule = experiment_pb2.StoppingRule.Name(command.rule) if command.rule else ""  # type: ignore[arg-type]
        return await self._change(
            command.key,
            "experiment.stopped",
            actor,
            change,
            reason=command.reason,
            extra=extra,
            rule=rule,
        )

    async def archive(self, key: str, actor: str) -> Committed:
        """Archives an experiment that is not running (archiving twice changes nothing, and
        answers the current configuration version). A holdout named by experiments that are not
        archived stays (FailedPrecondition)."""
        _require_key(key)
        stored = await self.get(key)
        if stored.status == experiment_pb2.EXPERIMENT_STATUS_ARCHIVED:
            return Committed(stored, await self._store.config_version())

        def change(current: Experiment) -> Experiment:
            archived = lifecycle.archive(current, self._clock())
            if archived is None:
                raise FailedPrecondition(f"experiment {key!r} was archived meanwhile")
            return archived

        async def check(writes: ConfigWrites, stored: Experiment, archived: Experiment) -> None:
            if archived.holdout:
                named = await writes.experiments_naming_holdout(key)
                holdouts.refuse_archiving_named_holdout(archived, named)

        return await self._change(key, "experiment.archived", actor, change, check=check)

    async def _change(
        self,
        key: str,
        action: str,
        actor: str,
        change: Callable[[Experiment], Experiment],
        *,
        check: Callable[[ConfigWrites, Experiment, Experiment], Awaitable[None]] | None = None,
        reason: str = "",
        extra: Mapping[str, Any] | None = None,
        rule: str = "",
    ) -> Committed:
        async with self._store.writes() as writes:
            stored = await writes.experiment_for_update(key)
            if stored is None:
                raise NotFound(f"experiment {key!r} not found")
            updated = change(stored)
            if check is not None:
                await check(writes, stored, updated)
            await writes.save_experiment(updated, actor)
            changes = {**diff(as_json(stored), as_json(updated)), **(extra or {})}
            at = updated.update_time.ToDatetime(tzinfo=UTC)
            entry = AuditEntry(action, actor, at, key, changes, reason, rule=rule)
            version = await self._commit(writes, entry)
            if updated.status in LIVE:
                await check_snapshot_budget(writes, self._max_snapshot_bytes)
        await self._publisher.publish(version)
        return Committed(updated, version)

    async def _commit(self, writes: ConfigWrites, entry: AuditEntry) -> int:
        """Records the change and bumps the configuration version, inside the transaction."""
        await writes.record(entry)
        return await writes.bump_config_version()
