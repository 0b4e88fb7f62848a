"""An experiment's state machine and field-mask updates (pure).

    DRAFT --start--> RUNNING --stop--> STOPPED --start--> RUNNING (restart)
    DRAFT, STOPPED --archive--> ARCHIVED (read-only)

Every transition returns a new message with `version` bumped and `update_time` set; the caller
validates, stores and records it. Changes to what decides a unit's bucket (weights, coverage, layer,
hashing) once the experiment has run bump `allocation_version`, so that units already assigned
keep their variant (sticky assignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments.experiment_rules import with_defaults
from verdict_platform.errors import FailedPrecondition, InvalidArgument

_E = experiment_pb2
Experiment = experiment_pb2.Experiment

UPDATABLE = frozenset(
    {
        "name",
        "description",
        "hypothesis",
        "variants",
        "coverage",
        "targeting",
        "layer",
        "hash_attribute",
        "seed",
        "hash_version",
        "metrics",
        "analysis_plan",
        "stopping_rules",
        "schedule",
        "forced_variations",
    }
)
"""Top-level fields an update mask may name; the rest are the key and output-only fields."""

_BUCKETING = ("coverage", "hash_attribute", "seed", "hash_version")

STATUS_NAMES: dict[int, str] = {
    _E.EXPERIMENT_STATUS_DRAFT: "DRAFT",
    _E.EXPERIMENT_STATUS_RUNNING: "RUNNING",
    _E.EXPERIMENT_STATUS_STOPPED: "STOPPED",
    _E.EXPERIMENT_STATUS_ARCHIVED: "ARCHIVED",
}


def _status(experiment: Experiment) -> str:
    return STATUS_NAMES.get(experiment.status, "UNSPECIFIED")


def _copy(experiment: Experiment) -> Experiment:
    out = Experiment()
    out.CopyFrom(experiment)
    return out


def _touched(experiment: Experiment, now: datetime) -> Experiment:
    experiment.version += 1
    experiment.update_time.FromDatetime(now)
    return experiment


def new_experiment(requested: Experiment, now: datetime) -> Experiment:
    """The experiment to store on create: defaults filled, output-only fields reset, in DRAFT."""
    out = with_defaults(requested)
    for field in ("decision", "create_time", "update_time", "start_time"):
        out.ClearField(field)
    out.status = _E.EXPERIMENT_STATUS_DRAFT
    out.version = 1
    out.allocation_version = 1
    out.create_time.FromDatetime(now)
    out.update_time.FromDatetime(now)
    return out


def mask_paths(mask: FieldMask) -> list[str]:
    """The mask's paths, checked against the updatable fields; InvalidArgument otherwise."""
    if not mask.paths:
        raise InvalidArgument.of("update_mask", "name at least one field to change")
    for path in mask.paths:
        top = path.split(".", 1)[0]
        if top not in UPDATABLE:
            raise InvalidArgument.of(
                "update_mask",
                f"{path!r} cannot be updated (updatable: {', '.join(sorted(UPDATABLE))})",
            )
        single = FieldMask(paths=[path])
        if not single.IsValidForDescriptor(Experiment.DESCRIPTOR):
            raise InvalidArgument.of("update_mask", f"{path!r} is not a field of Experiment")
    return list(mask.paths)


def _shape(variants: Sequence[experiment_pb2.Variant]) -> list[bytes]:
    """The variants without their weights: what may not change once the experiment ran."""
    shapes = []
    for variant in variants:
        copy = experiment_pb2.Variant()
        copy.CopyFrom(variant)
        copy.weight = 0.0
        shapes.append(copy.SerializeToString(deterministic=True))
    return shapes


def _allocation(experiment: Experiment) -> tuple[object, ...]:
    """What decides which bucket a unit falls in."""
    return (
        [variant.weight for variant in experiment.variants],
        *(getattr(experiment, name) for name in _BUCKETING),
        experiment.layer.SerializeToString(deterministic=True),
    )


def apply_update(
    stored: Experiment, patch: Experiment, paths: Sequence[str], now: datetime
) -> Experiment:
    """`stored` with the masked fields taken from `patch`.

    Raises FailedPrecondition for an archived experiment, or for variants changed beyond their
    weights after DRAFT (keys, payloads, control flag, count).
    """
    if stored.status == _E.EXPERIMENT_STATUS_ARCHIVED:
        raise FailedPrecondition(f"experiment {stored.key!r} is archived and read-only")
    updated = _copy(stored)
    FieldMask(paths=list(paths)).MergeMessage(
        patch, updated, replace_message_field=True, replace_repeated_field=True
    )
    updated = with_defaults(updated)
    if stored.status != _E.EXPERIMENT_STATUS_DRAFT and _shape(stored.variants) != _shape(
        updated.variants
    ):
        raise FailedPrecondition(
            f"experiment {stored.key!r} is {_status(stored)}: its variants can only change in "
            "DRAFT (weights excepted)"
        )
    if stored.status != _E.EXPERIMENT_STATUS_DRAFT and _allocation(stored) != _allocation(updated):
        updated.allocation_version += 1
    return _touched(updated, now)


def start(stored: Experiment, now: datetime) -> Experiment:
    """Starts a DRAFT experiment or restarts a STOPPED one (clearing its decision)."""
    if stored.status not in (_E.EXPERIMENT_STATUS_DRAFT, _E.EXPERIMENT_STATUS_STOPPED):
        raise FailedPrecondition(
            f"experiment {stored.key!r} is {_status(stored)}; only DRAFT or STOPPED can start"
        )
    out = _copy(stored)
    out.status = _E.EXPERIMENT_STATUS_RUNNING
    out.start_time.FromDatetime(now)
    out.ClearField("decision")
    return _touched(out, now)


def check_stop_request(reason: str, decision: int) -> int:
    """The effective decision of a stop request; InvalidArgument for a bad reason or decision."""
    if not reason.strip():
        raise InvalidArgument.of("reason", "is required")
    if decision == common_pb2.DECISION_UNSPECIFIED:
        return common_pb2.DECISION_INCONCLUSIVE
    if decision not in (
        common_pb2.DECISION_SHIP,
        common_pb2.DECISION_ROLLBACK,
        common_pb2.DECISION_INCONCLUSIVE,
    ):
        raise InvalidArgument.of("decision", "must be SHIP, ROLLBACK or INCONCLUSIVE")
    return decision


def stop(
    stored: Experiment,
    *,
    reason: str,
    decision: int,
    ship_variant_key: str,
    actor: str,
    now: datetime,
) -> Experiment:
    """Stops a RUNNING experiment, or overrides the decision of a STOPPED one."""
    effective = check_stop_request(reason, decision)
    if stored.status not in (_E.EXPERIMENT_STATUS_RUNNING, _E.EXPERIMENT_STATUS_STOPPED):
        raise FailedPrecondition(
            f"experiment {stored.key!r} is {_status(stored)}; only RUNNING or STOPPED can stop"
        )
    keys = {variant.key for variant in stored.variants}
    if effective == common_pb2.DECISION_SHIP:
        if ship_variant_key not in keys:
            raise InvalidArgument.of(
                "ship_variant_key", f"{ship_variant_key!r} is not a variant of {stored.key!r}"
            )
    elif ship_variant_key:
        raise InvalidArgument.of("ship_variant_key", "is only allowed with DECISION_SHIP")
    out = _copy(stored)
    out.status = _E.EXPERIMENT_STATUS_STOPPED
    out.decision.Clear()
    out.decision.decision = effective  # type: ignore[assignment]
    out.decision.reason = reason
    out.decision.ship_variant_key = ship_variant_key
    out.decision.stopped_by = actor
    out.decision.stop_time.FromDatetime(now)
    return _touched(out, now)


def archive(stored: Experiment, now: datetime) -> Experiment | None:
    """Archives a DRAFT or STOPPED experiment; None when it is archived already (no change)."""
    if stored.status == _E.EXPERIMENT_STATUS_ARCHIVED:
        return None
    if stored.status == _E.EXPERIMENT_STATUS_RUNNING:
        raise FailedPrecondition(f"experiment {stored.key!r} is RUNNING; stop it first")
    out = _copy(stored)
    out.status = _E.EXPERIMENT_STATUS_ARCHIVED
    return _touched(out, now)
