"""Validation of how an experiment picks its units beyond weights and coverage (pure): explicit
variant ranges, filters, the fallback attribute, and the shape of holdouts.

Write-time rules only: each names the offending field by its proto path and is INVALID_ARGUMENT.
What a draft may hold but a running experiment may not (an experiment that would enrol nobody) is
`enrolment`'s; what needs other experiments (the holdout a `holdout_key` names) is `holdouts`'.
"""

from __future__ import annotations

from collections.abc import Sequence

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.checks import SLUG_RULE, Violations, in_closed, is_slug

MAX_FILTERS = 10
MAX_FILTER_RANGES = 20
MAX_SEED_BYTES = 256
MAX_ATTRIBUTE_BYTES = 256
FILTER_HASH_VERSIONS = (0, 1, 2)
"""0 means 2, as for the experiment's own hash version."""

_Experiment = experiment_pb2.Experiment


def validate_allocation(experiment: _Experiment, v: Violations, prefix: str) -> None:
    """Records every violation of the ranges, filters, fallback attribute and holdout shape.
    Expects the hashing defaults filled in (`experiment_rules.with_defaults`)."""
    _variant_ranges(experiment, v, prefix)
    _filters(experiment, v, prefix)
    _fallback(experiment, v, prefix)
    _holdout(experiment, v, prefix)


def _size(text: str) -> int:
    return len(text.encode())


def check_range(bucket_range: experiment_pb2.BucketRange, v: Violations, at: str) -> bool:
    """A half-open range of [0, 1] with start <= end (empty allowed); True when valid."""
    ok_start = v.check(in_closed(bucket_range.start, 0.0, 1.0), f"{at}.start", "must be in [0, 1]")
    ok_end = v.check(in_closed(bucket_range.end, 0.0, 1.0), f"{at}.end", "must be in [0, 1]")
    if ok_start and ok_end:
        return v.check(
            bucket_range.start <= bucket_range.end, f"{at}.end", "must not be below start"
        )
    return False


def _variant_ranges(experiment: _Experiment, v: Violations, prefix: str) -> None:
    variants = experiment.variants
    ranged = [i for i, variant in enumerate(variants) if variant.HasField("range")]
    if not ranged:
        return
    for i, variant in enumerate(variants):
        if not variant.HasField("range"):
            v.add(
                f"{prefix}.variants[{i}].range",
                "is required: either every variant has a range or none does",
            )
    valid = [
        (variants[i].range.start, variants[i].range.end, i)
        for i in ranged
        if check_range(variants[i].range, v, f"{prefix}.variants[{i}].range")
    ]
    for i, j in overlapping(valid):
        v.add(f"{prefix}.variants[{j}].range", f"overlaps variants[{i}].range")


def overlapping(ranges: Sequence[tuple[float, float, int]]) -> list[tuple[int, int]]:
    """(earlier, later) index pairs of (start, end, index) ranges that share a bucket, one per
    later range (empty ranges share none)."""
    found = []
    reach: tuple[float, int] | None = None  # the furthest end so far, and whose it is
    for start, end, i in sorted((r for r in ranges if r[0] < r[1]), key=lambda r: (r[0], r[2])):
        if reach is not None and start < reach[0]:
            found.append((min(i, reach[1]), max(i, reach[1])))
        if reach is None or end > reach[0]:
            reach = (end, i)
    return found


def _filters(experiment: _Experiment, v: Violations, prefix: str) -> None:
    filters = experiment.filters
    v.check(len(filters) <= MAX_FILTERS, f"{prefix}.filters", f"at most {MAX_FILTERS} filters")
    for i, f in enumerate(filters):
        at = f"{prefix}.filters[{i}]"
        # An empty seed is a trap: every filter without one would hash alike.
        v.check(bool(f.seed), f"{at}.seed", "is required (e.g. another experiment's seed)")
        v.check(_size(f.seed) <= MAX_SEED_BYTES, f"{at}.seed", f"at most {MAX_SEED_BYTES} bytes")
        v.check(
            _size(f.attribute) <= MAX_ATTRIBUTE_BYTES,
            f"{at}.attribute",
            f"at most {MAX_ATTRIBUTE_BYTES} bytes",
        )
        v.check(
            f.hash_version in FILTER_HASH_VERSIONS,
            f"{at}.hash_version",
            "must be 1 or 2 (0 means 2)",
        )
        if v.check(
            1 <= len(f.ranges) <= MAX_FILTER_RANGES,
            f"{at}.ranges",
            f"needs 1 to {MAX_FILTER_RANGES} ranges",
        ):
            for j, bucket_range in enumerate(f.ranges):
                check_range(bucket_range, v, f"{at}.ranges[{j}]")


def _fallback(experiment: _Experiment, v: Violations, prefix: str) -> None:
    fallback = experiment.fallback_attribute
    if not fallback:
        return
    at = f"{prefix}.fallback_attribute"
    v.check(_size(fallback) <= MAX_ATTRIBUTE_BYTES, at, f"at most {MAX_ATTRIBUTE_BYTES} bytes")
    if experiment.hash_attribute in ("", "id"):
        # Every request has a unit id (the "id" attribute): the fallback could never be used.
        v.check(False, at, "is never used with hash_attribute 'id': every unit has an id")
    else:
        v.check(
            fallback != experiment.hash_attribute,
            at,
            f"must differ from hash_attribute ({experiment.hash_attribute!r})",
        )


def _holdout(experiment: _Experiment, v: Violations, prefix: str) -> None:
    key = experiment.holdout_key
    if key and v.check(is_slug(key), f"{prefix}.holdout_key", SLUG_RULE):
        v.check(key != experiment.key, f"{prefix}.holdout_key", "must name another experiment")
    if not experiment.holdout:
        return
    v.check(
        len(experiment.variants) == 2,
        f"{prefix}.variants",
        "a holdout has exactly two variants: the held-out control and everyone else",
    )
    v.check(not experiment.HasField("layer"), f"{prefix}.layer", "a holdout has no layer")
    v.check(not key, f"{prefix}.holdout_key", "a holdout is not covered by another holdout")
