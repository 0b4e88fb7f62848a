"""The assignment engine: which variant a unit gets in each experiment, and why.

The assignment service and the Python client's local evaluator both build an `Evaluator` from the
same configuration, so they cannot disagree. Everything that depends only on the configuration
(compiled conditions, bucket ranges, seeded hashers, layer seeds) is prepared once when the
`Evaluator` is built; `assign` does only per-unit work and no I/O.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from verdict.evaluation.buckets import get_bucket_ranges
from verdict.evaluation.conditions import CompiledCondition, ConditionError, compile_condition
from verdict.evaluation.config import ExperimentConfig
from verdict.evaluation.hashing import hash as _hash
from verdict.evaluation.hashing import make_hasher
from verdict.evaluation.jsvalues import CONTAINER_TYPES, to_string, truthy


class Reason(enum.Enum):
    """Why a unit got, or did not get, a variant (names match the proto's AssignmentReason)."""

    ASSIGNED = "assigned"
    """Hashed into a variant's bucket range."""
    FORCED = "forced"
    """Listed in the experiment's QA allow-list."""
    STICKY = "sticky"
    """Kept from an earlier assignment (decided by the service's cache, never by the engine)."""
    NOT_TARGETED = "not_targeted"
    """The attributes do not satisfy the targeting condition."""
    NOT_IN_TRAFFIC = "not_in_traffic"
    """The hash falls outside the covered part of the bucket ranges."""
    NOT_RUNNING = "not_running"
    """The experiment is not running, or the time is outside its schedule."""
    UNKNOWN_KEY = "unknown_key"
    """No experiment has this key."""
    NOT_IN_LAYER = "not_in_layer"
    """The unit falls outside the experiment's range in its layer."""
    NO_HASH_ATTRIBUTE = "no_hash_attribute"
    """The unit has no usable value for the experiment's hash attribute."""


class Assignment(NamedTuple):
    """The outcome for one experiment.

    A NamedTuple rather than a frozen dataclass because `assign` builds one per experiment per
    call: it is as immutable and three times cheaper to construct.
    """

    experiment_key: str
    """The experiment."""
    variant_key: str | None
    """The variant, or None when the unit is not in the experiment."""
    variant_index: int
    """The variant's position in the experiment's variants, or -1."""
    reason: Reason
    """Why."""
    payload_json: str | None
    """The variant's payload JSON, or None when the unit is not in the experiment."""
    bucket: float | None
    """The unit's hash in [0, 1) when it was computed (ASSIGNED, NOT_IN_TRAFFIC), else None."""
    in_experiment: bool
    """True when the unit is in the experiment (assigned, forced or sticky)."""


def hash_value_of(value: Any) -> str | None:
    """The string hashed for an attribute value, or None when the value cannot identify a unit.

    As in GrowthBook a falsy value (missing, null, "", 0, false) identifies nobody; arrays and
    objects are refused too rather than hashed as JavaScript's "a,b" or "[object Object]".
    """
    if type(value) is str:
        return value or None
    if not truthy(value) or isinstance(value, CONTAINER_TYPES):
        return None
    return to_string(value)


class _Compiled:
    """One experiment, prepared for assignment."""

    __slots__ = (
        "condition",
        "config",
        "end",
        "forced",
        "hash_attribute",
        "hasher",
        "key",
        "layer_end",
        "layer_seed",
        "layer_start",
        "no_hash_attribute",
        "not_in_layer",
        "not_running",
        "not_targeted",
        "payloads",
        "ranges",
        "running",
        "start",
        "variant_keys",
    )

    def __init__(self, config: ExperimentConfig, saved_groups: Mapping[str, Sequence[Any]]):
        key = config.key
        self.config = config
        self.key = key
        self.running = config.running
        self.start = -math.inf if config.start_time is None else config.start_time
        self.end = math.inf if config.end_time is None else config.end_time
        self.hash_attribute = config.hash_attribute
        layer = config.layer
        self.layer_seed = None if layer is None else "__" + layer.id
        self.layer_start = 0.0 if layer is None else layer.start
        self.layer_end = 1.0 if layer is None else layer.end
        self.condition: CompiledCondition | None = None
        if config.condition:
            try:
                self.condition = compile_condition(config.condition, saved_groups)
            except ConditionError as error:
                raise ValueError(f"experiment {key!r}: invalid condition: {error}") from error
        self.hasher: Callable[[str], float | None] = make_hasher(
            config.effective_seed, config.hash_version
        )
        weights = [variant.weight for variant in config.variants]
        self.ranges = tuple(get_bucket_ranges(len(weights), config.coverage, weights))
        self.variant_keys = tuple(variant.key for variant in config.variants)
        self.payloads = tuple(variant.payload_json for variant in config.variants)
        self.not_running = _outcome(key, Reason.NOT_RUNNING)
        self.not_targeted = _outcome(key, Reason.NOT_TARGETED)
        self.not_in_layer = _outcome(key, Reason.NOT_IN_LAYER)
        self.no_hash_attribute = _outcome(key, Reason.NO_HASH_ATTRIBUTE)
        index_of = {variant_key: i for i, variant_key in enumerate(self.variant_keys)}
        self.forced = {
            unit: Assignment(
                key, variant, index_of[variant], Reason.FORCED, self.payloads[index_of[variant]],
                None, True,
            )
            for unit, variant in config.forced.items()
        }  # fmt: skip


def _outcome(key: str, reason: Reason, bucket: float | None = None) -> Assignment:
    return Assignment(key, None, -1, reason, None, bucket, False)


class Evaluator:
    """Assigns units to a fixed set of experiments; build one per configuration snapshot.

    Raises ValueError when two experiments share a key or a condition is malformed.
    """

    def __init__(
        self,
        experiments: Iterable[ExperimentConfig],
        saved_groups: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        groups = dict(saved_groups or {})
        compiled: dict[str, _Compiled] = {}
        for config in experiments:
            if config.key in compiled:
                raise ValueError(f"duplicate experiment key {config.key!r}")
            compiled[config.key] = _Compiled(config, groups)
        self._by_key = compiled
        self._running = tuple(c for c in compiled.values() if c.running)
        self.experiments: Mapping[str, ExperimentConfig] = {
            key: c.config for key, c in compiled.items()
        }
        """The configurations, by key."""

    def assign(
        self,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        keys: Sequence[str] | None = None,
        now: float | None = None,
    ) -> list[Assignment]:
        """Assign `unit_id` to the experiments named by `keys`, in that order, or, when `keys` is
        None or empty, to every running experiment in configuration order.

        `attributes` are the unit's targeting attributes; `"id"` is the unit id unless they carry
        one. `now` (epoch seconds, default the current time) decides schedules. Checks, in order:
        unknown key, not running or outside the schedule, forced variant, hash attribute, layer,
        targeting condition, bucket ranges (coverage and weights).
        """
        if attributes is None:
            attributes = {"id": unit_id}
        elif "id" not in attributes:
            attributes = {**attributes, "id": unit_id}
        if now is None:
            now = time.time()
        assign_one = _assign_one
        if keys:
            by_key = self._by_key
            return [
                assign_one(by_key[key], unit_id, attributes, now)
                if key in by_key
                else _outcome(key, Reason.UNKNOWN_KEY)
                for key in keys
            ]
        return [assign_one(c, unit_id, attributes, now) for c in self._running]


def _assign_one(
    experiment: _Compiled, unit_id: str, attributes: Mapping[str, Any], now: float
) -> Assignment:
    """The checks of `Evaluator.assign` for one experiment, in GrowthBook's order."""
    if not experiment.running or not experiment.start <= now < experiment.end:
        return experiment.not_running
    raw = attributes.get(experiment.hash_attribute)
    hash_value = (raw or None) if type(raw) is str else hash_value_of(raw)
    forced = experiment.forced
    if forced:
        hit = forced.get(unit_id)
        if hit is None and hash_value is not None:
            hit = forced.get(hash_value)
        if hit is not None:
            return hit
    if hash_value is None:
        return experiment.no_hash_attribute
    layer_seed = experiment.layer_seed
    if layer_seed is not None:
        position = _hash(layer_seed, hash_value, 1)
        if position is None or not experiment.layer_start <= position < experiment.layer_end:
            return experiment.not_in_layer
    condition = experiment.condition
    if condition is not None and not condition(attributes):
        return experiment.not_targeted
    n = experiment.hasher(hash_value)
    if n is None:  # unreachable: ExperimentConfig admits only known hash versions
        return _outcome(experiment.key, Reason.NOT_IN_TRAFFIC)
    for index, (start, end) in enumerate(experiment.ranges):
        if start <= n < end:
            return Assignment(
                experiment.key,
                experiment.variant_keys[index],
                index,
                Reason.ASSIGNED,
                experiment.payloads[index],
                n,
                True,
            )
    return _outcome(experiment.key, Reason.NOT_IN_TRAFFIC, n)
