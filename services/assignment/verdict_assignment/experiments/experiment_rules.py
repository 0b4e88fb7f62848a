"""Validation and defaults of an experiment's configuration (pure).

Each rule names the offending field by its proto path (`experiment.variants[1].weight`), so a
client can point at it. Rules that need the metric catalog take the known metric keys as an
argument: this module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from verdict.evaluation import validate_condition
from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments.allocation_rules import validate_allocation
from verdict_assignment.experiments.checks import (
    SLUG_RULE,
    Violations,
    in_closed,
    in_open,
    is_finite,
    is_known,
    is_slug,
)

WEIGHT_TOLERANCE = 1e-6
"""How far the sum of the weights may be from 1 (float sums of 1/3 are not exact)."""
SEGMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,127}")
"""A segment is recorded as a key of the exposure's segments, which ingest checks the same way."""
DEFAULT_HASH_ATTRIBUTE = "id"
DEFAULT_COVERAGE = 1.0
"""An experiment created without `coverage` covers everyone eligible (the contract's default)."""
DEFAULT_HASH_VERSION = 2
HASH_VERSIONS = (1, 2)

_Experiment = experiment_pb2.Experiment


def struct_to_dict(struct: Struct) -> dict[str, object]:
    """A Struct as plain JSON values."""
    return json_format.MessageToDict(struct)


def with_defaults(experiment: _Experiment) -> _Experiment:
    """A copy with the documented defaults written out, so that what is stored (and served to
    every evaluator) says what it means: coverage 1 when absent, seed = key, hash attribute
    "id", hash version 2 (also each filter's). Weights all 0 stay 0: that is the contract's
    "equal split", and writing 1/n would change what the caller sees for nothing."""
    filled = _Experiment()
    filled.CopyFrom(experiment)
    if not filled.HasField("coverage"):
        filled.coverage = DEFAULT_COVERAGE
    if not filled.seed:
        filled.seed = filled.key
    if not filled.hash_attribute:
        filled.hash_attribute = DEFAULT_HASH_ATTRIBUTE
    if filled.hash_version == 0:
        filled.hash_version = DEFAULT_HASH_VERSION
    for f in filled.filters:
        if f.hash_version == 0:
            f.hash_version = DEFAULT_HASH_VERSION
    return filled


def validate_experiment(
    experiment: _Experiment,
    known_metrics: Collection[str],
    prefix: str = "experiment",
    known_groups: Collection[str] | None = None,
) -> Violations:
    """Every violation of the experiment's configuration (output-only fields are not checked).
    With `known_groups`, a condition naming a saved group that does not exist is refused (it
    would target no one, or everyone)."""
    v = Violations()
    v.check(is_slug(experiment.key), f"{prefix}.key", SLUG_RULE)
    _variants(experiment, v, prefix)
    if experiment.HasField("coverage"):
        v.check(in_closed(experiment.coverage, 0.0, 1.0), f"{prefix}.coverage", "must be in [0, 1]")
    _targeting(experiment, v, prefix, known_groups)
    _hashing(experiment, v, prefix)
    validate_allocation(experiment, v, prefix)
    _metrics(experiment, known_metrics, v, prefix)
    _analysis_plan(experiment.analysis_plan, v, f"{prefix}.analysis_plan")
    _stopping_rules(experiment, v, f"{prefix}.stopping_rules")
    _schedule(experiment.schedule, v, f"{prefix}.schedule")
    _forced(experiment, v, prefix)
    return v


def _variants(experiment: _Experiment, v: Violations, prefix: str) -> None:
    variants = experiment.variants
    v.check(len(variants) >= 2, f"{prefix}.variants", "needs at least two variants")
    controls = sum(1 for variant in variants if variant.is_control)
    if variants:
        v.check(
            controls == 1,
            f"{prefix}.variants",
            f"exactly one variant must be the control (found {controls})",
        )
    seen: set[str] = set()
    weights_ok = True
    for i, variant in enumerate(variants):
        at = f"{prefix}.variants[{i}]"
        if v.check(is_slug(variant.key), f"{at}.key", SLUG_RULE):
            v.check(variant.key not in seen, f"{at}.key", f"duplicate variant key {variant.key!r}")
        seen.add(variant.key)
        weights_ok &= v.check(
            in_closed(variant.weight, 0.0, 1.0), f"{at}.weight", "must be in [0, 1]"
        )
    total = sum(variant.weight for variant in variants)
    # All 0 is the contract's equal split; otherwise the explicit split must be whole.
    if variants and weights_ok and any(variant.weight for variant in variants):
        v.check(
            abs(total - 1.0) <= WEIGHT_TOLERANCE,
            f"{prefix}.variants",
            f"weights must sum to 1, or all be 0 for an equal split (they sum to {total:.9g})",
        )


def _targeting(
    experiment: _Experiment, v: Violations, prefix: str, known_groups: Collection[str] | None
) -> None:
    """One violation per problem of the condition, at `<prefix>.targeting.<path in it>`: stored
    as it is, a malformed condition would silently target no one."""
    if not experiment.HasField("targeting"):
        return
    condition = struct_to_dict(experiment.targeting)
    for problem in validate_condition(condition, known_groups=known_groups):
        path = f"{prefix}.targeting.{problem.path}" if problem.path else f"{prefix}.targeting"
        v.add(path, problem.message)


def _hashing(experiment: _Experiment, v: Violations, prefix: str) -> None:
    v.check(
        experiment.hash_version in (0, *HASH_VERSIONS),
        f"{prefix}.hash_version",
        "must be 1 or 2 (0 means 2)",
    )
    if experiment.HasField("layer"):
        layer = experiment.layer
        at = f"{prefix}.layer"
        v.check(bool(layer.id.strip()), f"{at}.id", "is required for a layer")
        ok_start = v.check(in_closed(layer.start, 0.0, 1.0), f"{at}.start", "must be in [0, 1]")
        if v.check(in_closed(layer.end, 0.0, 1.0), f"{at}.end", "must be in [0, 1]") and ok_start:
            v.check(layer.start < layer.end, f"{at}.end", "must be greater than start")


def _metrics(experiment: _Experiment, known: Collection[str], v: Violations, prefix: str) -> None:
    seen: set[str] = set()
    for i, metric in enumerate(experiment.metrics):
        at = f"{prefix}.metrics[{i}]"
        if v.check(metric.metric_key in known, f"{at}.metric_key", "unknown metric key"):
            v.check(
                metric.metric_key not in seen,
                f"{at}.metric_key",
                "metric listed twice",
            )
        seen.add(metric.metric_key)
        v.check(
            metric.role != experiment_pb2.METRIC_ROLE_UNSPECIFIED
            and is_known(experiment_pb2.MetricRole.DESCRIPTOR, metric.role),
            f"{at}.role",
            "must be PRIMARY, SECONDARY or GUARDRAIL",
        )


def _analysis_plan(plan: experiment_pb2.AnalysisPlan, v: Violations, at: str) -> None:
    v.check(
        plan.alpha == 0 or (is_finite(plan.alpha) and 0 < plan.alpha <= 0.5),
        f"{at}.alpha",
        "must be in (0, 0.5] (0 means 0.05)",
    )
    v.check(
        plan.power == 0 or in_open(plan.power, 0.0, 1.0),
        f"{at}.power",
        "must be in (0, 1) (0 means 0.8)",
    )
    v.check(
        is_finite(plan.minimum_detectable_effect) and plan.minimum_detectable_effect >= 0,
        f"{at}.minimum_detectable_effect",
        "must be a finite number >= 0",
    )
    v.check(is_known(common_pb2.Sides.DESCRIPTOR, plan.sides), f"{at}.sides", "unknown value")
    v.check(plan.sequential_tuning_n >= 0, f"{at}.sequential_tuning_n", "must be >= 0")
    lookback = plan.cuped_lookback
    v.check(
        lookback.seconds >= 0 and lookback.nanos >= 0,
        f"{at}.cuped_lookback",
        "must not be negative",
    )
    v.check(
        is_known(experiment_pb2.MultipleTestingCorrection.DESCRIPTOR, plan.correction),
        f"{at}.correction",
        "unknown value",
    )
    v.check(
        is_known(experiment_pb2.ProportionTest.DESCRIPTOR, plan.proportion_test),
        f"{at}.proportion_test",
        "unknown value",
    )
    segments: set[str] = set()
    for i, segment in enumerate(plan.segments):
        v.check(
            SEGMENT_NAME.fullmatch(segment) is not None,
            f"{at}.segments[{i}]",
            "must be an attribute name: a letter, then up to 127 letters, digits, '_', '.' or '-'",
        )
        v.check(segment not in segments, f"{at}.segments[{i}]", "listed twice")
        segments.add(segment)


def _stopping_rules(experiment: _Experiment, v: Violations, at: str) -> None:
    rules = experiment.stopping_rules
    duration = rules.max_duration
    if rules.HasField("max_duration"):
        v.check(
            duration.seconds > 0 or (duration.seconds == 0 and duration.nanos > 0),
            f"{at}.max_duration",
            "must be positive",
        )
    v.check(rules.target_sample_size >= 0, f"{at}.target_sample_size", "must be >= 0")
    v.check(rules.min_units_per_variant >= 0, f"{at}.min_units_per_variant", "must be >= 0")
    v.check(
        is_known(experiment_pb2.SrmAction.DESCRIPTOR, rules.srm_action),
        f"{at}.srm_action",
        "unknown value",
    )
    v.check(
        rules.srm_p_value_threshold == 0 or in_open(rules.srm_p_value_threshold, 0.0, 1.0),
        f"{at}.srm_p_value_threshold",
        "must be in (0, 1) (0 means 0.001)",
    )
    roles = {metric.role for metric in experiment.metrics}
    if rules.efficacy:
        v.check(
            experiment_pb2.METRIC_ROLE_PRIMARY in roles,
            f"{at}.efficacy",
            "needs a PRIMARY metric",
        )
    if rules.guardrail_harm:
        v.check(
            experiment_pb2.METRIC_ROLE_GUARDRAIL in roles,
            f"{at}.guardrail_harm",
            "needs a GUARDRAIL metric",
        )


def _schedule(schedule: experiment_pb2.Schedule, v: Violations, at: str) -> None:
    if schedule.HasField("start_time") and schedule.HasField("end_time"):
        start = (schedule.start_time.seconds, schedule.start_time.nanos)
        end = (schedule.end_time.seconds, schedule.end_time.nanos)
        v.check(end > start, f"{at}.end_time", "must be after start_time")


def _forced(experiment: _Experiment, v: Violations, prefix: str) -> None:
    keys = {variant.key for variant in experiment.variants}
    for unit, variant_key in sorted(experiment.forced_variations.items()):
        at = f"{prefix}.forced_variations[{unit!r}]"
        v.check(bool(unit), at, "the unit id must not be empty")
        v.check(variant_key in keys, at, f"{variant_key!r} is not a variant key")
