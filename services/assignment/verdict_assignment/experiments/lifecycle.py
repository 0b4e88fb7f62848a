"""An experiment's state machine and field-mask updates (pure).

    DRAFT --start--> RUNNING --stop--> STOPPED --start--> RUNNING (restart)
    DRAFT, STOPPED --archive--> ARCHIVED (read-only)

Every transition returns a new message with `version` bumped and `update_time` set; the caller
validates, stores and records it. Changes to what decides a unit's bucket (weights, ranges,
coverage, layer, filters, hashing and the fallback attribute) once the experiment has run bump
`allocation_version`, so that units already assigned keep their variant (sticky assignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct

from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments.experiment_rules import with_defaults
from verdict_platform.errors import FailedPrecondition, InvalidArgument

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
        "fallback_attribute",
        "filters",
        "holdout_key",
        "holdout",
        "qa_mode",
    }
)
"""Top-level fields an update mask may name; the rest are the key and output-only fields."""

_BUCKETING = ("coverage", "hash_attribute", "seed", "hash_version", "fallback_attribute")

STATUS_NAMES: dict[int, str] = {
    experiment_pb2.EXPERIMENT_STATUS_DRAFT: "DRAFT",
    experiment_pb2.EXPERIMENT_STATUS_RUNNING: "RUNNING",
    experiment_pb2.EXPERIMENT_STATUS_STOPPED: "STOPPED",
    experiment_pb2.EXPERIMENT_STATUS_ARCHIVED: "ARCHIVED",
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
    out.status = experiment_pb2.EXPERIMENT_STATUS_DRAFT
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
    """The variants without their weights and ranges: what may not change once the experiment
    ran (the split may, like weights, keeping assigned units sticky)."""
    shapes = []
    for variant in variants:
        copy = experiment_pb2.Variant()
        copy.CopyFrom(variant)
        copy.weight = 0.0
        copy.ClearField("range")
        shapes.append(copy.SerializeToString(deterministic=True))
    return shapes


def _allocation(experiment: Experiment) -> tuple[object, ...]:
    """What decides which bucket a unit falls in."""
    return (
        [variant.weight for variant in experiment.variants],
        [variant.range.SerializeToString(deterministic=True) for variant in experiment.variants],
        *(getattr(experiment, name) for name in _BUCKETING),
        experiment.layer.SerializeToString(deterministic=True),
        [f.SerializeToString(deterministic=True) for f in experiment.filters],
    )


def apply_update(
    stored: Experiment, patch: Experiment, paths: Sequence[str], now: datetime
) -> Experiment:
    """`stored` with the masked fields taken from `patch`, defaults filled in: a masked field
    the patch leaves absent takes its default (`coverage`: 1, as on create).

    Raises FailedPrecondition for an archived experiment, or for variants changed beyond their
    weights and ranges after DRAFT (keys, payloads, control flag, count).
    """
    if stored.status == experiment_pb2.EXPERIMENT_STATUS_ARCHIVED:
        raise FailedPrecondition(f"experiment {stored.key!r} is archived and read-only")
    updated = _copy(stored)
    FieldMask(paths=list(paths)).MergeMessage(
        patch, updated, replace_message_field=True, replace_repeated_field=True
    )
    updated = with_defaults(updated)
    if stored.status != experiment_pb2.EXPERIMENT_STATUS_DRAFT and _shape(
        stored.variants
    ) != _shape(updated.variants):
        raise FailedPrecondition(
            f"experiment {stored.key!r} is {_status(stored)}: its variants can only change in "
            "DRAFT (weights and ranges excepted)"
        )
    if stored.status != experiment_pb2.EXPERIMENT_STATUS_DRAFT and _allocation(
        stored
    ) != _allocation(updated):
        updated.allocation_version += 1
    return _touched(updated, now)


def _checked_overrides(
    requested: Sequence[experiment_pb2.RuleOverride], reason: str, actor: str, now: datetime
) -> list[experiment_pb2.RuleOverride]:
    """The request's rule overrides, validated and stamped (actor, time, reason)."""
    out = []
    seen: set[int] = set()
    for i, o in enumerate(requested):
        at = f"rule_overrides[{i}]"
        if (
            o.rule == experiment_pb2.STOPPING_RULE_UNSPECIFIED
            or o.rule not in experiment_pb2.StoppingRule.values()
        ):
            raise InvalidArgument.of(f"{at}.rule", "must name a stopping rule")
        if o.rule in seen:
            raise InvalidArgument.of(f"{at}.rule", "is overridden twice")
        seen.add(o.rule)
        if (
            o.mode == experiment_pb2.RULE_OVERRIDE_MODE_UNSPECIFIED
            or o.mode not in experiment_pb2.RuleOverrideMode.values()
        ):
            raise InvalidArgument.of(f"{at}.mode", "must be OVERRIDE, SNOOZE or DISABLE")
        snooze = o.mode == experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE
        if snooze and (not o.HasField("until") or o.until.ToDatetime(tzinfo=now.tzinfo) <= now):
            raise InvalidArgument.of(f"{at}.until", "a snooze needs a time in the future")
        why = o.reason.strip() or reason.strip()
        if not why:
            raise InvalidArgument.of(f"{at}.reason", "is required (or give the request's reason)")
        stamped = experiment_pb2.RuleOverride(rule=o.rule, mode=o.mode, reason=why, actor=actor)
        if o.mode == experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE:
            stamped.until.CopyFrom(o.until)
        stamped.create_time.FromDatetime(now)
        out.append(stamped)
    return out


def start(
    stored: Experiment,
    now: datetime,
    *,
    reason: str = "",
    overrides: Sequence[experiment_pb2.RuleOverride] = (),
    actor: str = "",
) -> Experiment:
    """Starts a DRAFT experiment or restarts a STOPPED one (clearing its decision).

    Restarting an experiment a stopping rule stopped overrules that rule: it needs a `reason`,
    and the rule is recorded as overridden (mode OVERRIDE, with the stop's figures as baseline)
    unless the request silences it some other way. `overrides` snooze, disable or override
    other rules for this run.
    """
    if stored.status not in (
        experiment_pb2.EXPERIMENT_STATUS_DRAFT,
        experiment_pb2.EXPERIMENT_STATUS_STOPPED,
    ):
        raise FailedPrecondition(
            f"experiment {stored.key!r} is {_status(stored)}; only DRAFT or STOPPED can start"
        )
    silenced = _checked_overrides(overrides, reason, actor, now)
    stopped_by_rule = (
        stored.status == experiment_pb2.EXPERIMENT_STATUS_STOPPED
        and stored.decision.rule != experiment_pb2.STOPPING_RULE_UNSPECIFIED
    )
    if stopped_by_rule and not reason.strip():
        rule = experiment_pb2.StoppingRule.Name(stored.decision.rule)
        raise InvalidArgument.of(
            "reason", f"is required: restarting overrides the stopping rule {rule}"
        )
    if stopped_by_rule and all(o.rule != stored.decision.rule for o in silenced):
        override = experiment_pb2.RuleOverride(
            rule=stored.decision.rule,
            mode=experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE,
            reason=reason.strip(),
            actor=actor,
        )
        override.create_time.FromDatetime(now)
        override.baseline.CopyFrom(stored.decision.details)
        silenced.insert(0, override)
    out = _copy(stored)
    out.status = experiment_pb2.EXPERIMENT_STATUS_RUNNING
    out.start_time.FromDatetime(now)
    out.ClearField("decision")
    del out.rule_overrides[:]
    out.rule_overrides.extend(silenced)
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
    rule: int = 0,
    details: Struct | None = None,
) -> Experiment:
    """Stops a RUNNING experiment, or overrides the decision of a STOPPED one. `rule` and
    `details` name the stopping rule of an automated stop and its figures. Operators' rule
    overrides end with the run."""
    effective = check_stop_request(reason, decision)
    if stored.status not in (
        experiment_pb2.EXPERIMENT_STATUS_RUNNING,
        experiment_pb2.EXPERIMENT_STATUS_STOPPED,
    ):
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
    out.status = experiment_pb2.EXPERIMENT_STATUS_STOPPED
    out.decision.Clear()
    out.decision.decision = effective  # type: ignore[assignment]
    out.decision.reason = reason
    out.decision.ship_variant_key = ship_variant_key
    out.decision.stopped_by = actor
    out.decision.stop_time.FromDatetime(now)
    if rule not in experiment_pb2.StoppingRule.values():
        raise InvalidArgument.of("rule", "unknown stopping rule")
    out.decision.rule = rule  # type: ignore[assignment]
    if details is not None:
        out.decision.details.CopyFrom(details)
    del out.rule_overrides[:]
    return _touched(out, now)


def archive(stored: Experiment, now: datetime) -> Experiment | None:
    """Archives a DRAFT or STOPPED experiment; None when it is archived already (no change)."""
    if stored.status == experiment_pb2.EXPERIMENT_STATUS_ARCHIVED:
        return None
    if stored.status == experiment_pb2.EXPERIMENT_STATUS_RUNNING:
        raise FailedPrecondition(f"experiment {stored.key!r} is RUNNING; stop it first")
    out = _copy(stored)
    out.status = experiment_pb2.EXPERIMENT_STATUS_ARCHIVED
    return _touched(out, now)
