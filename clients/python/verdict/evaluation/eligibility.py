"""The assignment steps beyond the hot path: fallback attribute, filters, holdouts, QA mode, the
request's forced variations and explanations.

`evaluate` runs every step of an assignment in GrowthBook's order (its `_runExperiment`):

1. not running, or outside the schedule: NOT_RUNNING;
2. the request's forced variations (QA traffic), then the experiment's allow-list (looked up by
   unit id, then by the value hashed): FORCED;
3. QA mode: everyone else is QA_MODE;
4. the value hashed: the hash attribute's, else the fallback attribute's (GrowthBook's
   `getHashAttribute`); neither: NO_HASH_ATTRIBUTE;
5. filters (GrowthBook's `isFilteredOut`): FILTERED_OUT; then the layer: NOT_IN_LAYER (GrowthBook
   checks filters where it checks the namespace; Verdict checks both when both are set);
6. targeting: NOT_TARGETED;
7. the holdout (GrowthBook checks holdouts as prerequisites, after the condition): a unit that
   the covering holdout assigns to its control is HELD_OUT;
8. the bucket against the ranges (explicit ranges, or weights and coverage): ASSIGNED or
   NOT_IN_TRAFFIC.

`evaluate` is the engine's pure-Python path for every experiment. The C accelerator repeats
the steps of experiments without these features and calls `evaluate` (through `Compiled.python`)
for the others, so that both paths answer with the one implementation here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from verdict.evaluation.compiled import Compiled
from verdict.evaluation.config import ExperimentConfig
from verdict.evaluation.explain import Trace, failing_part, ranges_text
from verdict.evaluation.hashing import hash as _hash
from verdict.evaluation.outcomes import Assignment, Reason, hash_value_of


def _hashed(
    primary: str, fallback: str | None, attributes: Mapping[str, Any]
) -> tuple[str, str | None]:
    value = hash_value_of(attributes.get(primary))
    if value is None and fallback is not None:
        value = hash_value_of(attributes.get(fallback))
        if value is not None:
            return fallback, value
    return primary, value


def hashed_by(
    config: ExperimentConfig, attributes: Mapping[str, Any], unit_id: str | None = None
) -> tuple[str, str] | None:
    """The attribute and the value `config` hashes for a unit with these `attributes`: its hash
    attribute's value, else its fallback attribute's; None when neither is usable.

    `attributes` as `Evaluator.assign` reads them: `"id"` is the unit id (pass `unit_id` to have
    it filled in when `attributes` carry no `"id"`). The service records the pair on exposures.
    """
    if unit_id is not None and "id" not in attributes:
        attributes = {"id": unit_id, **attributes}
    attribute, value = _hashed(config.hash_attribute, config.fallback_attribute, attributes)
    return None if value is None else (attribute, value)


def identity_problem(unit_id: str, attributes: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(field, description) when `attributes` carry an `id` other than `unit_id`, else None.

    The unit id is the value of the default hash attribute "id"; a different `id` would hash one
    unit and record another, so the service answers INVALID_ARGUMENT (AssignRequest.unit_id).
    """
    if attributes is None or "id" not in attributes:
        return None
    given = attributes["id"]
    if type(given) is str and given == unit_id:
        return None
    return "attributes.id", f"must equal unit_id {unit_id!r} when given, got {given!r}"


def evaluate(
    c: Compiled,
    unit_id: str,
    attributes: Mapping[str, Any],
    now: float,
    buckets: bool = True,
    forced: Mapping[str, str] | None = None,
    trace: Trace | None = None,
) -> Assignment:
    """Every step of an assignment (see the module's docstring). `forced`: the request's forced
    variations, checked beforehand (a variant unknown to `c` raises KeyError here). `trace`, when
    given, collects the explanation."""
    if not c.running or not c.start <= now < c.end:
        if trace is not None:
            trace.detail = (
                f"time {now:g} is outside the schedule [{c.start:g}, {c.end:g})"
                if c.running
                else "the experiment is not running"
            )
        return c.not_running
    attribute, hash_value = _hashed(c.hash_attribute, c.fallback_attribute, attributes)
    if trace is not None:
        trace.hash_attribute, trace.hash_value = attribute, hash_value or ""
    if forced:
        variant = forced.get(c.key)
        if variant is not None:
            if trace is not None:
                trace.detail = f"the request forces variant {variant!r}"
            return c.forced_by_variant[variant]
    if c.forced:
        hit = c.forced.get(unit_id)
        if hit is None and hash_value is not None:
            hit = c.forced.get(hash_value)
        if hit is not None:
            if trace is not None:
                trace.detail = f"the QA allow-list forces variant {hit.variant_key!r}"
            return hit
    if c.qa_mode:
        if trace is not None:
            trace.detail = "the experiment is in QA mode and nothing forces a variant of it"
        return c.qa_mode_outcome
    if hash_value is None:
        if trace is not None:
            trace.detail = f"the unit has no usable value for {c.hash_attribute!r}" + (
                "" if c.fallback_attribute is None else f" nor for {c.fallback_attribute!r}"
            )
        return c.no_hash_attribute
    for number, (hasher, ranges, filter_attribute) in enumerate(c.filters):
        value = hash_value if filter_attribute is None else hash_value_of(
            attributes.get(filter_attribute)
        )  # fmt: skip
        n = None if value is None else hasher(value)
        if n is None or not any(start <= n < end for start, end in ranges):
            if trace is not None:
                trace.detail = (
                    f"filter {number} has no value for {filter_attribute!r}"
                    if n is None
                    else f"filter {number}: hash {n:g} is outside {ranges_text(ranges)}"
                )
            return c.filtered_out
    layer_seed = c.layer_seed
    if layer_seed is not None:
        position = _hash(layer_seed, hash_value, 1)
        if trace is not None:
            trace.layer_position = position
        if position is None or not c.layer_start <= position < c.layer_end:
            if trace is not None:
                trace.detail = (
                    f"layer position {position:g} is outside the experiment's range "
                    f"[{c.layer_start:g}, {c.layer_end:g}) of layer {layer_seed[2:]!r}"
                )
            return c.not_in_layer
    if c.condition is not None and not c.condition(attributes):
        if trace is not None:
            assert c.config.condition is not None
            trace.failed_condition = failing_part(c.config.condition, attributes, c.saved_groups)
            trace.detail = f"the targeting condition fails on {trace.failed_condition}"
        return c.not_targeted
    holdout = c.holdout
    if holdout is not None:
        held = evaluate(holdout, unit_id, attributes, now, False, forced)
        if held.in_experiment and held.variant_index == holdout.control_index:
            if trace is not None:
                trace.detail = f"the unit is in the control group of holdout {holdout.key!r}"
            return c.held_out
    return _bucketed(c, hash_value, buckets, trace)


def _bucketed(c: Compiled, hash_value: str, buckets: bool, trace: Trace | None) -> Assignment:
    n = c.hasher(hash_value)
    if n is None:  # unreachable: ExperimentConfig admits only known hash versions
        return Assignment(c.key, None, -1, Reason.NOT_IN_TRAFFIC, None, None, False)
    if trace is not None:
        trace.bucket = n
    for index, (start, end) in enumerate(c.ranges):
        if start <= n < end:
            if trace is not None:
                trace.detail = (
                    f"bucket {n:g} is in variant {c.variant_keys[index]!r}'s range "
                    f"[{start:g}, {end:g})"
                )
            if not buckets:
                return c.assigned[index]
            return Assignment(
                c.key, c.variant_keys[index], index, Reason.ASSIGNED, c.payloads[index], n, True
            )
    if trace is not None:
        trace.detail = f"bucket {n:g} is outside the covered ranges {ranges_text(c.ranges)}"
    if not buckets:
        return c.not_in_traffic
    return Assignment(c.key, None, -1, Reason.NOT_IN_TRAFFIC, None, n, False)
