"""The assignment engine: which variant a unit gets in each experiment, and why.

The assignment service and the Python client's local evaluator both build an `Evaluator` from the
same configuration, so they cannot disagree. Everything that depends only on the configuration
(compiled conditions, bucket ranges, seeded hashers, layer seeds) is prepared once when the
`Evaluator` is built; `assign` does only per-unit work and no I/O.

`eligibility.evaluate` is the reference implementation, the one description of the rules in
Python. When the compiled accelerator (`_native.c`, built by `make setup`) is importable,
`assign` runs its copy of the hot-path steps instead, calling back into the conditions and
hashers compiled here; experiments with identical conditions share one compiled condition,
evaluated once per call. Tests hold the two paths equal.

Experiments using a fallback attribute, filters, a holdout or QA mode carry a Python callable
(`Compiled.python`, `eligibility.evaluate` bound to them) that the C code calls instead of its
own steps: it never implements those, and experiments without them stay on the fast path.
Per-request forced variations and explanations (QA and debugging traffic) always run
`eligibility.evaluate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from verdict.evaluation.compiled import Compiled
from verdict.evaluation.conditions import CompiledCondition
from verdict.evaluation.config import ExperimentConfig
from verdict.evaluation.eligibility import evaluate
from verdict.evaluation.explain import Explanation, Trace
from verdict.evaluation.hashing import hash as _hash
from verdict.evaluation.outcomes import Assignment, Reason, hash_value_of
from verdict.evaluation.outcomes import outcome as _outcome
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
     "no_hash_attribute", "assigned", "not_in_traffic", "python")
)  # fmt: skip
"""The fields `_native_record` fills; the accelerator names the order it reads them in."""


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


def _native_record(c: Compiled, slot: int, condition: Any) -> tuple[Any, ...]:
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
        "not_in_traffic": c.not_in_traffic, "python": c.python,
    }  # fmt: skip
    return tuple(fields[name] for name in _native.RECORD_FIELDS)


def _program(c: Compiled, saved_groups: Mapping[str, Sequence[Any]]) -> Any:
    """The condition's compiled program; its closure should lowering ever refuse it (the closure
    is the reference: slower, same answers)."""
    assert _native is not None and c.config.condition
    try:
        return _native.Program(lower_condition(c.config.condition, saved_groups))
    except (ValueError, TypeError):
        return c.condition


def _native_plan(
    compiled: Sequence[Compiled], saved_groups: Mapping[str, Sequence[Any]], buckets: bool
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
    An experiment naming a holdout (`holdout_key`) is covered by it only when that holdout is one
    of these experiments and is running; otherwise the experiment ignores it, so that stopping or
    deleting a holdout releases its experiments instead of blocking them.
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
        compiled: dict[str, Compiled] = {}
        for config in experiments:
            if config.key in compiled:
                raise ValueError(f"duplicate experiment key {config.key!r}")
            compiled[config.key] = Compiled(config, groups, conditions)
        for c in compiled.values():
            holdout = compiled.get(c.config.holdout_key or "")
            if holdout is not None and holdout.config.holdout and holdout.running:
                c.holdout = holdout
            if c.needs_python:
                c.python = _bound(c, buckets)
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
        forced: Mapping[str, str] | None = None,
    ) -> list[Assignment]:
        """Assign `unit_id` to the experiments named by `keys`, in that order, or, when `keys` is
        None or empty, to every running experiment in configuration order.

        `attributes` are the unit's targeting attributes; `"id"` is the unit id unless they carry
        one. `now` (epoch seconds, default the current time) decides schedules. `forced` (QA):
        experiment key -> variant key, answered FORCED in a running experiment; keys of no
        experiment are ignored, a variant the experiment does not have raises ValueError.
        Checks, in order (`eligibility`'s docstring): not running or outside the schedule,
        forced variant, QA mode, hash attribute (or its fallback), filters, layer, targeting
        condition, holdout, bucket ranges (coverage and weights, or explicit ranges).
        """
        if attributes is None:  # inlined `_with_id`: this is the hot path
            attributes = {"id": unit_id}
        elif type(attributes) is not dict or "id" not in attributes:
            attributes = {"id": unit_id, **attributes}  # a dict: the accelerator reads dicts
        if now is None:
            now = time.time()
        if forced:
            return self._traced(unit_id, attributes, keys, now, forced, None)
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
        assign_one, buckets = evaluate, self._buckets
        if keys:
            by_key = self._by_key
            return [
                assign_one(by_key[key], unit_id, attributes, now, buckets)
                if key in by_key
                else _outcome(key, Reason.UNKNOWN_KEY)
                for key in keys
            ]
        return [assign_one(c, unit_id, attributes, now, buckets) for c in self._running]

    def explain(
        self,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        keys: Sequence[str] | None = None,
        now: float | None = None,
        forced: Mapping[str, str] | None = None,
    ) -> list[tuple[Assignment, Explanation]]:
        """What `assign` answers with the same arguments, each answer with its explanation.
        Slower (pure Python, a trace per experiment): for debugging, not for serving."""
        attributes = _with_id(unit_id, attributes)
        if now is None:
            now = time.time()
        traces: list[Trace] = []
        results = self._traced(unit_id, attributes, keys, now, forced or None, traces)
        return [(r, t.explanation()) for r, t in zip(results, traces, strict=True)]

    def _traced(
        self,
        unit_id: str,
        attributes: Mapping[str, Any],
        keys: Sequence[str] | None,
        now: float,
        forced: Mapping[str, str] | None,
        traces: list[Trace] | None,
    ) -> list[Assignment]:
        """Every step in Python (`eligibility.evaluate`), with a trace per result when `traces`
        is a list."""
        by_key = self._by_key
        for key, variant in (forced or {}).items():
            c = by_key.get(key)
            if c is not None and variant not in c.forced_by_variant:
                raise ValueError(f"forced_variations.{key}: experiment has no variant {variant!r}")
        chosen = [by_key.get(key) for key in keys] if keys else list(self._running)
        results = []
        for i, c in enumerate(chosen):
            trace = None
            if traces is not None:
                trace = Trace()
                traces.append(trace)
            if c is None:
                assert keys
                if trace is not None:
                    trace.detail = f"no experiment has key {keys[i]!r}"
                results.append(_outcome(keys[i], Reason.UNKNOWN_KEY))
            else:
                results.append(evaluate(c, unit_id, attributes, now, self._buckets, forced, trace))
        return results


def _with_id(unit_id: str, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The attributes with `"id"` (the unit id unless they carry one), as an exact dict: the
    accelerator reads dicts."""
    if attributes is None:
        return {"id": unit_id}
    if type(attributes) is not dict or "id" not in attributes:
        return {"id": unit_id, **attributes}
    return attributes


def _bound(c: Compiled, buckets: bool) -> Callable[[str, Mapping[str, Any], float], Assignment]:
    """`eligibility.evaluate` for `c`, as `Compiled.python` (called by the C accelerator)."""

    def assign(unit_id: str, attributes: Mapping[str, Any], now: float) -> Assignment:
        return evaluate(c, unit_id, attributes, now, buckets)

    return assign
