"""Validation of metric definitions and saved groups (pure)."""

from __future__ import annotations

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.checks import (
    SLUG_RULE,
    Violations,
    in_open,
    is_finite,
    is_known,
    is_slug,
)

MAX_GROUP_VALUES = 100_000
"""Largest saved group: every assignment replica holds all of them in memory."""


def validate_metric(metric: experiment_pb2.Metric, prefix: str = "metric") -> Violations:
    """Every violation of a metric definition."""
    v = Violations()
    v.check(is_slug(metric.key), f"{prefix}.key", SLUG_RULE)
    typed = v.check(
        metric.type != experiment_pb2.METRIC_TYPE_UNSPECIFIED
        and is_known(experiment_pb2.MetricType.DESCRIPTOR, metric.type),
        f"{prefix}.type",
        "must be BINOMIAL, MEAN, COUNT, RATIO or QUANTILE",
    )
    v.check(
        bool(metric.source.event_name.strip()),
        f"{prefix}.source.event_name",
        "is required",
    )
    if typed and metric.type in (
        experiment_pb2.METRIC_TYPE_MEAN,
        experiment_pb2.METRIC_TYPE_QUANTILE,
    ):
        v.check(
            bool(metric.source.measure.strip()),
            f"{prefix}.source.measure",
            "is required for MEAN and QUANTILE metrics",
        )
    if metric.type == experiment_pb2.METRIC_TYPE_RATIO:
        v.check(
            bool(metric.denominator.event_name.strip()),
            f"{prefix}.denominator.event_name",
            "is required for RATIO metrics",
        )
    else:
        v.check(
            not metric.HasField("denominator"),
            f"{prefix}.denominator",
            "is only allowed for RATIO metrics",
        )
    if metric.type == experiment_pb2.METRIC_TYPE_QUANTILE:
        v.check(in_open(metric.quantile, 0.0, 1.0), f"{prefix}.quantile", "must be in (0, 1)")
    else:
        v.check(metric.quantile == 0, f"{prefix}.quantile", "is only allowed for QUANTILE metrics")
    window = metric.window
    v.check(window.seconds >= 0 and window.nanos >= 0, f"{prefix}.window", "must not be negative")
    _capping(metric, v, prefix)
    v.check(
        is_known(experiment_pb2.Direction.DESCRIPTOR, metric.direction),
        f"{prefix}.direction",
        "unknown value",
    )
    margin = metric.non_inferiority_margin
    v.check(
        is_finite(margin) and 0 <= margin < 1,
        f"{prefix}.non_inferiority_margin",
        "must be in [0, 1)",
    )
    return v


def _capping(metric: experiment_pb2.Metric, v: Violations, prefix: str) -> None:
    value = metric.capping_value
    at = f"{prefix}.capping_value"
    if not v.check(
        is_known(experiment_pb2.CappingType.DESCRIPTOR, metric.capping),
        f"{prefix}.capping",
        "unknown value",
    ):
        return
    if metric.capping == experiment_pb2.CAPPING_TYPE_ABSOLUTE:
        v.check(is_finite(value) and value > 0, at, "must be a positive number")
    elif metric.capping == experiment_pb2.CAPPING_TYPE_PERCENTILE:
        v.check(in_open(value, 0.0, 1.0), at, "must be in (0, 1) for PERCENTILE capping")
    else:
        v.check(value == 0, at, "needs a capping type")


def validate_saved_group(
    group: experiment_pb2.SavedGroup, prefix: str = "saved_group"
) -> Violations:
    """Every violation of a saved group: a slug key and scalar values (string, number, bool)."""
    v = Violations()
    v.check(is_slug(group.key), f"{prefix}.key", SLUG_RULE)
    v.check(
        len(group.values) <= MAX_GROUP_VALUES,
        f"{prefix}.values",
        f"at most {MAX_GROUP_VALUES} values",
    )
    for i, value in enumerate(group.values):
        kind = value.WhichOneof("kind")
        at = f"{prefix}.values[{i}]"
        if kind == "number_value":
            v.check(is_finite(value.number_value), at, "must be a finite number")
        else:
            v.check(kind in ("string_value", "bool_value"), at, "must be a string or a number")
    return v
