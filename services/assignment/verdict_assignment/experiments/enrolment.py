"""Whether an experiment can enrol anyone (pure).

A draft may hold a configuration that enrols nobody (coverage 0 while it is being prepared); a
running experiment may not: StartExperiment, and UpdateExperiment of an experiment that has left
DRAFT into such a state, refuse it with FAILED_PRECONDITION naming each field that keeps everyone
out. Such an
experiment would look live and collect nothing, and its zero values are the easiest mistake to
make (a client that forgets `coverage` used to store 0).

Also refused: a control kept out of traffic (weight 0 or an empty range) while other variants
get some, since every comparison would then be against nobody; and filters hashing the same
seed, attribute and version whose ranges have no point in common.

Not traps, so not refused: every variant weight 0 (an equal split, per the contract); treatment
variants with an empty range or weight 0 (kept out of traffic) while another has traffic; QA
mode (forced requests enrol).
"""

from __future__ import annotations

from verdict.v1 import experiment_pb2
from verdict_platform.errors import FailedPrecondition, FieldViolation

NOBODY = "the experiment would enrol nobody"
CONTROL_EMPTY = "the control gets no traffic: every variant would be compared with nobody"


def _empty(bucket_range: experiment_pb2.BucketRange) -> bool:
    return not bucket_range.start < bucket_range.end


def nobody_reasons(experiment: experiment_pb2.Experiment, prefix: str = "") -> list[FieldViolation]:
    """Each field whose value keeps every unit out, at `prefix` + its path; empty when the
    experiment can enrol someone."""
    found: list[FieldViolation] = []
    variants = experiment.variants
    ranged = bool(variants) and all(variant.HasField("range") for variant in variants)
    if ranged:  # explicit ranges replace weights and coverage
        if all(_empty(variant.range) for variant in variants):
            found.append(
                FieldViolation(f"{prefix}variants", f"every variant's range is empty: {NOBODY}")
            )
    elif experiment.HasField("coverage") and experiment.coverage <= 0:
        found.append(FieldViolation(f"{prefix}coverage", f"is 0: {NOBODY}"))
    found += _control_reasons(experiment, ranged, prefix)
    if experiment.HasField("layer") and not experiment.layer.start < experiment.layer.end:
        found.append(FieldViolation(f"{prefix}layer", f"its range is empty: {NOBODY}"))
    for i, f in enumerate(experiment.filters):
        if all(_empty(r) for r in f.ranges):
            found.append(
                FieldViolation(f"{prefix}filters[{i}].ranges", f"every range is empty: {NOBODY}")
            )
    found += _disjoint_filters(experiment, prefix)
    return found


def _disjoint_filters(experiment: experiment_pb2.Experiment, prefix: str) -> list[FieldViolation]:
    """Filters that hash the same thing (seed, attribute, version) place a unit at one point, so
    a unit passes them all only where their ranges overlap; none overlapping keeps everyone out."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, f in enumerate(experiment.filters):
        groups.setdefault((f.seed, f.attribute, f.hash_version or 2), []).append(i)
    found = []
    for indexes in groups.values():
        if len(indexes) < 2:
            continue
        common = [(r.start, r.end) for r in experiment.filters[indexes[0]].ranges if not _empty(r)]
        for i in indexes[1:]:
            common = [
                (max(a, r.start), min(b, r.end))
                for a, b in common
                for r in experiment.filters[i].ranges
                if max(a, r.start) < min(b, r.end)
            ]
        if not common:
            found.append(
                FieldViolation(
                    f"{prefix}filters[{indexes[-1]}].ranges",
                    f"no unit is in the ranges of every filter on seed "
                    f"{experiment.filters[indexes[0]].seed!r}: {NOBODY}",
                )
            )
    return found


def _control_reasons(
    experiment: experiment_pb2.Experiment, ranged: bool, prefix: str
) -> list[FieldViolation]:
    """The control kept out of traffic while others get some: every comparison would be against
    nobody (a treatment may be kept out; the baseline may not)."""
    variants = experiment.variants
    for i, variant in enumerate(variants):
        if not variant.is_control:
            continue
        if ranged and _empty(variant.range) and not all(_empty(v.range) for v in variants):
            return [FieldViolation(f"{prefix}variants[{i}].range", CONTROL_EMPTY)]
        if not ranged and variant.weight <= 0 and any(v.weight > 0 for v in variants):
            return [FieldViolation(f"{prefix}variants[{i}].weight", CONTROL_EMPTY)]
    return []


def refuse_enrolling_nobody(
    experiment: experiment_pb2.Experiment,
    action: str,
    prefix: str = "",
    before: experiment_pb2.Experiment | None = None,
) -> None:
    """FailedPrecondition naming every field that keeps everyone out of `experiment`;
    `action` says what is refused ("start", "update the live experiment"). With `before` (an
    update), only the fields the change makes keep everyone out: an experiment stored that way
    earlier (before coverage had a default) can still be edited, e.g. to fix it."""
    reasons = nobody_reasons(experiment, prefix)
    if before is not None:
        already = {r.field for r in nobody_reasons(before, prefix)}
        reasons = [r for r in reasons if r.field not in already]
    if reasons:
        detail = "; ".join(f"{r.field}: {r.description}" for r in reasons)
        raise FailedPrecondition(
            f"cannot {action} {experiment.key!r}: {detail} (a draft may hold this, a live "
            "experiment may not)",
            reasons,
        )
