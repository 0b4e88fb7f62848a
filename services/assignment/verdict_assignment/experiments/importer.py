"""Use case: import a GrowthBook payload (ImportGrowthBook), all of it or nothing.

`growthbook_import` converts; this stores, in one transaction: the saved groups the experiments
name, then each experiment as a DRAFT (and, with `start`, started), each change in the audit log,
and one configuration version for the lot, published after commit. Any failure (a key taken, a
saved group that exists with other values, an experiment Verdict's rules refuse, the snapshot
budget) rolls everything back, so a retried import never finds half of itself stored. A dry run
runs the same checks in a transaction that writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments import holdouts, lifecycle
from verdict_assignment.experiments.changes import as_json, diff
from verdict_assignment.experiments.enrolment import refuse_enrolling_nobody
from verdict_assignment.experiments.experiment_rules import validate_experiment
from verdict_assignment.experiments.growthbook_import import (
    FIELD,
    Conversion,
    convert,
    parse_payload,
)
from verdict_assignment.experiments.ports import (
    AuditEntry,
    Clock,
    ConfigPublisher,
    ConfigStore,
    ConfigWrites,
)
from verdict_assignment.experiments.snapshot_budget import check_snapshot_budget
from verdict_platform.errors import AlreadyExists, FieldViolation, InvalidArgument

REASON = "imported from GrowthBook"
"""The audit log's reason for every change an import makes."""


@dataclass(frozen=True)
class ImportCommand:
    """What ImportGrowthBook asks for."""

    payload_json: str
    dry_run: bool = False
    start: bool = False


@dataclass(frozen=True)
class ImportOutcome:
    """What was (or, on a dry run, would be) stored."""

    experiments: tuple[experiment_pb2.Experiment, ...]
    saved_groups: tuple[experiment_pb2.SavedGroup, ...]
    skipped: tuple[str, ...]
    config_version: int
    """0 on a dry run."""


class GrowthBookImporter:
    """Imports GrowthBook payloads into the configuration store."""

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

    async def run(self, command: ImportCommand, actor: str) -> ImportOutcome:
        """Converts and stores; InvalidArgument (bad payload, or an experiment Verdict refuses),
        AlreadyExists (an experiment key taken, a saved group stored with other values)."""
        payload = parse_payload(command.payload_json)
        now = self._clock()
        async with self._store.writes() as writes:
            conversion = convert(payload, await writes.saved_group_keys())
            groups = await _new_groups(writes, conversion.saved_groups, now)
            experiments = [lifecycle.new_experiment(e, now) for e in conversion.experiments]
            await _check(writes, conversion, experiments)
            skipped = list(conversion.skipped)
            if command.start:
                skipped += [
                    f"{conversion.origins[key]}: imported as a draft, not started: GrowthBook "
                    "enrols nobody in it (inactive, draft or stopped there, or no traffic)"
                    for key in sorted(conversion.not_startable)
                ]
            if command.dry_run:
                return ImportOutcome(tuple(experiments), tuple(groups), tuple(skipped), 0)
            stored = [
                await self._store_one(writes, e, actor, now, command, conversion)
                for e in experiments
            ]
            for group in groups:
                await writes.put_saved_group(group)
                changes = {
                    **diff(None, as_json(group)),
                    "key": {"before": None, "after": group.key},
                }
                await writes.record(AuditEntry("saved_group.put", actor, now, "", changes, REASON))
            version = await writes.bump_config_version()
            await check_snapshot_budget(writes, self._max_snapshot_bytes)
        await self._publisher.publish(version)
        return ImportOutcome(tuple(stored), tuple(groups), tuple(skipped), version)

    async def _store_one(
        self,
        writes: ConfigWrites,
        experiment: experiment_pb2.Experiment,
        actor: str,
        now: datetime,
        command: ImportCommand,
        conversion: Conversion,
    ) -> experiment_pb2.Experiment:
        if not await writes.insert_experiment(experiment, actor):
            raise AlreadyExists(f"experiment {experiment.key!r} exists already")
        changes = diff(None, as_json(experiment))
        await writes.record(
            AuditEntry("experiment.created", actor, now, experiment.key, changes, REASON)
        )
        if not command.start or experiment.key in conversion.not_startable:
            return experiment
        # The same checks as StartExperiment: the converter keeps experiments GrowthBook enrols
        # nobody in as drafts, and stores a holdout (started) before the experiments naming it.
        refuse_enrolling_nobody(experiment, "start")
        holdout_key = experiment.holdout_key
        holdout = await writes.experiment_for_share(holdout_key) if holdout_key else None
        holdouts.refuse_unless_holdout_runs(experiment, holdout, "start")
        started = lifecycle.start(experiment, now, reason=REASON, actor=actor)
        await writes.save_experiment(started, actor)
        changes = diff(as_json(experiment), as_json(started))
        await writes.record(
            AuditEntry("experiment.started", actor, now, experiment.key, changes, REASON)
        )
        return started


async def _new_groups(
    writes: ConfigWrites, groups: Sequence[experiment_pb2.SavedGroup], now: datetime
) -> list[experiment_pb2.SavedGroup]:
    """The payload's groups that are not stored yet, stamped; a group stored with other values
    is AlreadyExists (replacing it would retarget the experiments that name it)."""
    out = []
    for group in groups:
        stored = await writes.saved_group_for_update(group.key)
        if stored is not None:
            if list(stored.values) != list(group.values):
                raise AlreadyExists(
                    f"saved group {group.key!r} exists already with other values: import it "
                    "under another id, or make the stored group equal first (PutSavedGroup)"
                )
            continue
        stamped = experiment_pb2.SavedGroup()
        stamped.CopyFrom(group)
        stamped.update_time.FromDatetime(now)
        out.append(stamped)
    return out


async def _check(
    writes: ConfigWrites,
    conversion: Conversion,
    experiments: Sequence[experiment_pb2.Experiment],
) -> None:
    """Verdict's own rules on each experiment (the converter should never break them: a
    violation names the JSON path it came from), then the keys."""
    groups = await writes.saved_group_keys() | {g.key for g in conversion.saved_groups}
    violations = []
    for experiment in experiments:
        origin = conversion.origins[experiment.key]
        found = validate_experiment(experiment, set(), known_groups=groups)
        violations += [
            FieldViolation(FIELD, f"{origin}: {v.field}: {v.description}") for v in found.items
        ]
    if violations:
        raise InvalidArgument(violations)
    for experiment in experiments:
        if await writes.experiment_for_update(experiment.key) is not None:
            raise AlreadyExists(
                f"experiment {experiment.key!r} exists already "
                f"(from {conversion.origins[experiment.key]})"
            )


__all__ = ["REASON", "GrowthBookImporter", "ImportCommand", "ImportOutcome"]
