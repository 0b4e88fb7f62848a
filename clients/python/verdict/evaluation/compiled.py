"""An experiment prepared for assignment: everything that depends only on its configuration.

Built once per `Evaluator` (compiled conditions, bucket ranges, seeded hashers, layer seeds,
prebuilt answers), so that assigning a unit does only per-unit work. Both the pure-Python steps
and the accelerator's records (`engine._native_record`) read these fields.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from verdict.evaluation.buckets import get_bucket_ranges
from verdict.evaluation.conditions import CompiledCondition, ConditionError, compile_condition
from verdict.evaluation.config import BucketRange, ExperimentConfig
from verdict.evaluation.hashing import make_hasher
from verdict.evaluation.outcomes import Assignment, Reason, outcome

Hasher = Callable[[str], float | None]
CompiledFilter = tuple[Hasher, tuple[BucketRange, ...], str | None]
"""A filter as (seeded hasher, ranges, attribute or None for the experiment's hashed value)."""


class Compiled:
    """One experiment, prepared for assignment.

    `python` is set by the Evaluator for experiments whose steps only the Python code implements
    (fallback attribute, filters, a holdout, QA mode): a `(unit_id, attributes, now) ->
    Assignment` the C accelerator calls instead of its own steps. `holdout` is the covering holdout
    when it is running in the same Evaluator, else None (the experiment then ignores it).
    """

    __slots__ = (
        "assigned",
        "condition",
        "config",
        "control_index",
        "end",
        "fallback_attribute",
        "filtered_out",
        "filters",
        "forced",
        "forced_by_variant",
        "hash_attribute",
        "hasher",
        "held_out",
        "holdout",
        "key",
        "layer_end",
        "layer_seed",
        "layer_start",
        "no_hash_attribute",
        "not_in_layer",
        "not_in_traffic",
        "not_running",
        "not_targeted",
        "payloads",
        "python",
        "qa_mode",
        "qa_mode_outcome",
        "ranges",
        "running",
        "saved_groups",
        "start",
        "variant_keys",
    )  # fmt: skip

    def __init__(
        self,
        config: ExperimentConfig,
        saved_groups: Mapping[str, Sequence[Any]],
        conditions: dict[str, CompiledCondition],
    ):
        key = config.key
        self.config = config
        self.key = key
        self.running = config.running
        self.start = -math.inf if config.start_time is None else config.start_time
        self.end = math.inf if config.end_time is None else config.end_time
        # Interned: the accelerator reuses a call's last attribute read and layer position when
        # the next experiment names the same string object.
        self.hash_attribute = sys.intern(config.hash_attribute)
        fallback = config.fallback_attribute
        self.fallback_attribute = None if fallback is None else sys.intern(fallback)
        layer = config.layer
        self.layer_seed = None if layer is None else sys.intern("__" + layer.id)
        self.layer_start = 0.0 if layer is None else layer.start
        self.layer_end = 1.0 if layer is None else layer.end
        self.saved_groups = saved_groups
        self.condition: CompiledCondition | None = None
        if config.condition:
            # `conditions`: compiled so far for this Evaluator, shared between equal conditions.
            canonical = canonical_json(config.condition)
            shared = None if canonical is None else conditions.get(canonical)
            if shared is None:
                try:
                    shared = compile_condition(config.condition, saved_groups)
                except ConditionError as error:
                    raise ValueError(f"experiment {key!r}: invalid condition: {error}") from error
                if canonical is not None:
                    conditions[canonical] = shared
            self.condition = shared
        self.hasher: Hasher = make_hasher(config.effective_seed, config.hash_version)
        self.filters: tuple[CompiledFilter, ...] = tuple(
            (make_hasher(f.seed, f.hash_version), f.ranges, f.attribute) for f in config.filters
        )
        self.qa_mode = config.qa_mode
        self.control_index = config.control_index
        self.holdout: Compiled | None = None
        self.python: Callable[[str, Mapping[str, Any], float], Assignment] | None = None
        if config.ranges is not None:  # explicit ranges replace weights and coverage
            self.ranges: tuple[BucketRange, ...] = config.ranges
        else:
            weights = [variant.weight for variant in config.variants]
            self.ranges = tuple(get_bucket_ranges(len(weights), config.coverage, weights))
        self.variant_keys = tuple(variant.key for variant in config.variants)
        self.payloads = tuple(variant.payload_json for variant in config.variants)
        self.assigned = tuple(  # the results without a bucket (Evaluator(buckets=False))
            Assignment(key, variant_key, i, Reason.ASSIGNED, payload, None, True)
            for i, (variant_key, payload) in enumerate(
                zip(self.variant_keys, self.payloads, strict=True)
            )
        )
        self.not_in_traffic = outcome(key, Reason.NOT_IN_TRAFFIC)
        self.not_running = outcome(key, Reason.NOT_RUNNING)
        self.not_targeted = outcome(key, Reason.NOT_TARGETED)
        self.not_in_layer = outcome(key, Reason.NOT_IN_LAYER)
        self.no_hash_attribute = outcome(key, Reason.NO_HASH_ATTRIBUTE)
        self.held_out = outcome(key, Reason.HELD_OUT)
        self.filtered_out = outcome(key, Reason.FILTERED_OUT)
        self.qa_mode_outcome = outcome(key, Reason.QA_MODE)
        self.forced_by_variant = {
            variant: Assignment(key, variant, i, Reason.FORCED, self.payloads[i], None, True)
            for i, variant in enumerate(self.variant_keys)
        }
        self.forced = {unit: self.forced_by_variant[v] for unit, v in config.forced.items()}

    @property
    def needs_python(self) -> bool:
        """Whether a step only the Python code implements applies to this experiment."""
        return bool(
            self.fallback_attribute is not None
            or self.filters
            or self.holdout is not None
            or self.qa_mode
        )


def canonical_json(condition: Mapping[str, Any]) -> str | None:
    """A key equal for equal conditions (sorted-key JSON), or None when it cannot be written."""
    try:
        return json.dumps(
            condition, sort_keys=True, separators=(",", ":"), allow_nan=False, default=plain
        )
    except (TypeError, ValueError):
        return None


def plain(value: Any) -> Any:
    """`json.dumps`'s `default` for the frozen containers configurations hold."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, frozenset, set)):
        return list(value) if isinstance(value, tuple) else sorted(value, key=repr)
    raise TypeError(type(value).__name__)
