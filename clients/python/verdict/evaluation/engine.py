"""The assignment engine: which variant a unit gets in each experiment, and why.

The assignment service and the Python client's local evaluator both build an `Evaluator` from the
same configuration, so they cannot disagree. Everything that depends only on the configuration
(compiled conditions, bucket ranges, seeded hashers, layer seeds) is prepared once when the
`Evaluator` is built; `assign` does only per-unit work and no I/O.

`_assign_one` below is the reference implementation. When the compiled accelerator
(`_native.c`, built by `make setup`) is importable, `assign` runs its copy of the same steps
instead, calling back into the conditions and hashers compiled here; experiments with identical
conditions share one compiled condition, evaluated once per call. Tests hold the two paths equal.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple

from verdict.evaluation.buckets import get_bucket_ranges
from verdict.evaluation.conditions import CompiledCondition, ConditionError, compile_condition
from verdict.evaluation.config import ExperimentConfig
from verdict.evaluation.hashing import hash as _hash
from verdict.evaluation.hashing import make_hasher
from verdict.evaluation.jsvalues import CONTAINER_TYPES, to_string, truthy
from verdict.evaluation.programs import lower_condition

_native: ModuleType | None
try:
    from verdict.evaluation import _native  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover - exercised only without a C compiler at setup
    _native = None

NATIVE_AVAILABLE = _native is not None
"""Whether the compiled accelerator was built; `Evaluator(native=None)` uses it when it was."""

RECORD_FIELDS = frozenset(
    ("key", "running", "start", "end", "hash_attribute", "forced", "layer_seed", "layer_start",
     "layer_end", "layer_hash", "condition", "slot", "seed", "hash_version", "hasher", "ranges",
     "variant_keys", "payloads", "not_running", "not_targeted", "not_in_layer",
     "no_hash_attribute", "assigned", "not_in_traffic")
)  # fmt: skip
"""The fields `_native_record` fills; the accelerator names the order it reads them in."""


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

    # Members are singletons compared by identity: hash them by identity too, in C, instead of
    # Enum's Python-level hash of the name (the service keys prebuilt responses by reason).
    __hash__ = object.__hash__


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


def check_native_layout(native: Any) -> None:
    """RuntimeError unless the accelerator reads records and builds Assignments with the fields
    this module has: `_native.c` addresses both by position."""
    if tuple(native.ASSIGNMENT_FIELDS) != Assignment._fields:
        raise RuntimeError(
            f"_native.c builds Assignment as {native.ASSIGNMENT_FIELDS}, engine.py defines "
            f"{Assignment._fields}: rebuild (make setup) or update _native.c"
        )
    if frozenset(native.RECORD_FIELDS) != RECORD_FIELDS or len(native.RECORD_FIELDS) != len(
        RECORD_FIELDS
    ):
        raise RuntimeError(
            f"_native.c reads records of {native.RECORD_FIELDS}, engine.py fills "
            f"{sorted(RECORD_FIELDS)}: rebuild (make setup) or update _native.c"
        )


if _native is not None:
    check_native_layout(_native)


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
        "assigned",
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
        "not_in_traffic",
        "not_running",
        "not_targeted",
        "payloads",
        "ranges",
        "running",
        "start",
        "variant_keys",
    )

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
        layer = config.layer
        self.layer_seed = None if layer is None else sys.intern("__" + layer.id)
        self.layer_start = 0.0 if layer is None else layer.start
        self.layer_end = 1.0 if layer is None else layer.end
        self.condition: CompiledCondition | None = None
        if config.condition:
            # `conditions`: compiled so far for this Evaluator, shared between equal conditions.
            canonical = _canonical(config.condition)
            shared = None if canonical is None else conditions.get(canonical)
            if shared is None:
                try:
                    shared = compile_condition(config.condition, saved_groups)
                except ConditionError as error:
                    raise ValueError(f"experiment {key!r}: invalid condition: {error}") from error
                if canonical is not None:
                    conditions[canonical] = shared
            self.condition = shared
        self.hasher: Callable[[str], float | None] = make_hasher(
            config.effective_seed, config.hash_version
        )
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
        self.not_in_traffic = _outcome(key, Reason.NOT_IN_TRAFFIC)
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


def _canonical(condition: Mapping[str, Any]) -> str | None:
    """A key equal for equal conditions (sorted-key JSON), or None when it cannot be written."""
    try:
        return json.dumps(
            condition, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_plain
        )
    except (TypeError, ValueError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, frozenset, set)):
        return list(value) if isinstance(value, tuple) else sorted(value, key=repr)
    raise TypeError(type(value).__name__)


def _outcome(key: str, reason: Reason, bucket: float | None = None) -> Assignment:
    return Assignment(key, None, -1, reason, None, bucket, False)


def _native_record(c: _Compiled, slot: int, condition: Any) -> tuple[Any, ...]:
    """`c` in the record layout `_native.c`'s `parse_record` reads (its `RECORD_FIELDS`)."""
    assert _native is not None
    layer_seed = c.layer_seed
    fields = {
        "key": c.key, "running": c.running, "start": c.start, "end": c.end,
        "hash_attribute": c.hash_attribute, "forced": c.forced or None, "layer_seed": layer_seed,
        "layer_start": c.layer_start, "layer_end": c.layer_end,
        "layer_hash": None if layer_seed is None else (lambda value: _hash(layer_seed, value, 1)),
        "condition": condition, "slot": slot, "seed": c.config.effective_seed,
        "hash_version": c.config.hash_version, "hasher": c.hasher,
        "ranges": tuple(bound for pair in c.ranges for bound in pair),
        "variant_keys": c.variant_keys, "payloads": c.payloads, "not_running": c.not_running,
        "not_targeted": c.not_targeted, "not_in_layer": c.not_in_layer,
        "no_hash_attribute": c.no_hash_attribute, "assigned": c.assigned,
        "not_in_traffic": c.not_in_traffic,
    }  # fmt: skip
    return tuple(fields[name] for name in _native.RECORD_FIELDS)


def _program(c: _Compiled, saved_groups: Mapping[str, Sequence[Any]]) -> Any:
    """The condition's compiled program; its closure should lowering ever refuse it (the closure
    is the reference: slower, same answers)."""
    assert _native is not None and c.config.condition
    try:
        return _native.Program(lower_condition(c.config.condition, saved_groups))
    except (ValueError, TypeError):
        return c.condition


def _native_plan(
    compiled: Sequence[_Compiled], saved_groups: Mapping[str, Sequence[Any]], buckets: bool
) -> Any:
    """The accelerator's plan over `compiled`; one memo slot and one condition program
    (`programs.py`) per distinct condition."""
    assert _native is not None
    slots: dict[int, tuple[int, Any]] = {}
    records = []
    for c in compiled:
        slot, program = -1, None
        if c.condition is not None:
            found = slots.get(id(c.condition))
            if found is None:
                found = slots[id(c.condition)] = (len(slots), _program(c, saved_groups))
            slot, program = found
        records.append(_native_record(c, slot, program))
    return _native.Plan(
        tuple(records), len(slots), Assignment, Reason.ASSIGNED, Reason.NOT_IN_TRAFFIC,
        hash_value_of, buckets,
    )  # fmt: skip


class Evaluator:
    """Assigns units to a fixed set of experiments; build one per configuration snapshot.

    `native` chooses the compiled accelerator (True), the pure-Python reference (False), or the
    accelerator when it was built (None, the default); the answers are the same.
    With `buckets=False` the results carry no bucket (None), which spares an allocation per
    result: in and out of traffic, each experiment answers with objects built once.
    Raises ValueError when two experiments share a key or a condition is malformed, and
    RuntimeError when `native=True` but the accelerator was not built.
    """

    def __init__(
        self,
        experiments: Iterable[ExperimentConfig],
        saved_groups: Mapping[str, Sequence[Any]] | None = None,
        native: bool | None = None,
        buckets: bool = True,
    ) -> None:
        groups = dict(saved_groups or {})
        conditions: dict[str, CompiledCondition] = {}
        compiled: dict[str, _Compiled] = {}
        for config in experiments:
            if config.key in compiled:
                raise ValueError(f"duplicate experiment key {config.key!r}")
            compiled[config.key] = _Compiled(config, groups, conditions)
        self._by_key = compiled
        self._running = tuple(c for c in compiled.values() if c.running)
        self.experiments: Mapping[str, ExperimentConfig] = {
            key: c.config for key, c in compiled.items()
        }
        """The configurations, by key."""
        if native and _native is None:
            raise RuntimeError("the native evaluator was not built (see scripts/build_native.py)")
        use_native = _native is not None if native is None else native
        self._plan = _native_plan(list(compiled.values()), groups, buckets) if use_native else None
        self._buckets = buckets
        self._index = {key: i for i, key in enumerate(compiled)}
        self.native = use_native
        """Whether `assign` runs the compiled accelerator."""

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
        elif type(attributes) is not dict or "id" not in attributes:
            attributes = {"id": unit_id, **attributes}  # a dict: the accelerator reads dicts
        if now is None:
            now = time.time()
        plan = self._plan
        if plan is not None:
            if not keys:
                return plan.assign_running(unit_id, attributes, now)  # type: ignore[no-any-return]
            index = self._index
            return [
                plan.assign_at(index[key], unit_id, attributes, now)
                if key in index
                else _outcome(key, Reason.UNKNOWN_KEY)
                for key in keys
            ]
        assign_one, buckets = _assign_one, self._buckets
        if keys:
            by_key = self._by_key
            return [
                assign_one(by_key[key], unit_id, attributes, now, buckets)
                if key in by_key
                else _outcome(key, Reason.UNKNOWN_KEY)
                for key in keys
            ]
        return [assign_one(c, unit_id, attributes, now, buckets) for c in self._running]


def _assign_one(
    experiment: _Compiled,
    unit_id: str,
    attributes: Mapping[str, Any],
    now: float,
    buckets: bool = True,
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
            if not buckets:
                return experiment.assigned[index]
            return Assignment(
                experiment.key,
                experiment.variant_keys[index],
                index,
                Reason.ASSIGNED,
                experiment.payloads[index],
                n,
                True,
            )
    return (
        _outcome(experiment.key, Reason.NOT_IN_TRAFFIC, n) if buckets else experiment.not_in_traffic
    )
