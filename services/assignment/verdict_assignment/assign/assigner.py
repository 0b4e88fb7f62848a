"""The Assign use case: evaluate from the snapshot, apply sticky variants, record exposures.

No network I/O unless an experiment in the answer had its allocation changed while running, or
has a fallback attribute (see `sticky`); exposures go to an in-memory buffer, each with the
attribute and value its experiment hashed.

The request's options (`fastpath.AssignOptions`) are handled here too: forced variations (checked
against the snapshot; answered FORCED, never exposures, never sticky), `min_config_version` (waits
up to MIN_CONFIG_VERSION_WAIT_S for this replica to load it, else Unavailable), and explanations
(`explanations`). Who may force is the servicer's business (it knows the caller).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from verdict.evaluation import Assignment, Reason, hashed_by, identity_problem
from verdict.evaluation.outcomes import hash_value_of
from verdict.limits import DEFAULT_ITEMS, DEFAULT_STRING_BYTES, unit_id_problem
from verdict.trace_context import sampled_span_context
from verdict.v1 import assignment_pb2
from verdict_assignment.assign import engine_api
from verdict_assignment.assign.engine_api import UNIT_ID_ATTRIBUTE
from verdict_assignment.assign.exposures import ExposureSink, PendingExposure
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import Snapshot
from verdict_assignment.assign.sticky import HashedKey, StickyStore
from verdict_platform.errors import FieldViolation, InvalidArgument

MAX_SEGMENT_VALUE_BYTES = 1024
"""A segment recorded with an exposure (ingest's limit on property values)."""
MIN_CONFIG_VERSION_WAIT_S = 2.0
"""How long a request with `min_config_version` waits for this replica to load that version."""

_STICKY_CANDIDATES = (Reason.ASSIGNED, Reason.NOT_IN_TRAFFIC)
_EXPOSED = (Reason.ASSIGNED, Reason.STICKY)  # forced units are QA traffic: not exposures
_THROUGH_HOLDOUT = (Reason.ASSIGNED, Reason.STICKY, Reason.HELD_OUT)


def _segment_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def check_unit_id(unit_id: str) -> None:
    """InvalidArgument unless the unit id has 1 to 256 bytes and no NUL character (PostgreSQL
    text cannot hold one: the unit's exposure would be refused by ingest, the unit lost)."""
    problem = unit_id_problem(unit_id)
    if problem is not None:
        raise InvalidArgument.of("unit_id", problem)


def check_experiment_keys(keys: Sequence[str]) -> None:
    """InvalidArgument unless `experiment_keys` holds at most 100 keys of at most 256 bytes (the
    contract's default limits; Assign checks its own request, see `limits.SELF_CHECKED`)."""
    if len(keys) > DEFAULT_ITEMS:
        raise InvalidArgument.of(
            "experiment_keys", f"has {len(keys)} entries; at most {DEFAULT_ITEMS} allowed"
        )
    for i, key in enumerate(keys):
        if len(key) > DEFAULT_STRING_BYTES // 4 and len(key.encode()) > DEFAULT_STRING_BYTES:
            raise InvalidArgument.of(
                f"experiment_keys[{i}]", f"is over {DEFAULT_STRING_BYTES} bytes"
            )


def check_identity(unit_id: str, attributes: Mapping[str, Any]) -> None:
    """InvalidArgument when the attributes carry an `id` other than the unit id (the engine's
    `identity_problem`, the rule `LocalEvaluator` applies too)."""
    problem = identity_problem(unit_id, attributes)
    if problem is not None:
        raise InvalidArgument.of(*problem)


def check_forced(snapshot: Snapshot, forced: Mapping[str, str]) -> None:
    """InvalidArgument naming `forced_variations.<key>` for each unknown experiment or variant."""
    violations = []
    for key, variant_key in forced.items():
        variants = snapshot.variant_index.get(key)
        if variants is None:
            problem = "no running or stopped experiment has this key"
        elif variant_key not in variants:
            problem = f"experiment has no variant {variant_key!r}"
        else:
            continue
        violations.append(FieldViolation(f"forced_variations.{key}", problem))
    if violations:
        raise InvalidArgument(violations)


def check_segments(attributes: Mapping[str, Any], names: Sequence[str]) -> None:
    """InvalidArgument when an attribute recorded as an exposure's segment could not be stored
    (over 1,024 bytes, or a NUL): ingest would refuse the exposure and the unit would vanish from
    the analysis without a word."""
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        text = _segment_value(value)
        if (
            len(text) > MAX_SEGMENT_VALUE_BYTES // 4
            and len(text.encode()) > MAX_SEGMENT_VALUE_BYTES
        ):
            raise InvalidArgument.of(
                f"attributes.{name}",
                f"is recorded as a segment: at most {MAX_SEGMENT_VALUE_BYTES} bytes",
            )
        if "\x00" in text:
            raise InvalidArgument.of(f"attributes.{name}", "must not contain NUL characters")


def holdout_results(
    snapshot: Snapshot,
    unit_id: str,
    attributes: Mapping[str, Any],
    results: Sequence[Assignment],
    now: float,
) -> list[Assignment]:
    """The unit's assignments to the holdouts covering experiments that answered it (assigned,
    kept or held out) when the request did not name the holdout, for the exposures only (the
    answer is unchanged): backends ask for their own experiments, never for the holdout, whose
    analysis would otherwise see neither its held-out units nor the others."""
    wanted: list[str] = []
    for r in results:
        holdout = snapshot.holdout_of.get(r.experiment_key)
        if holdout is not None and r.reason in _THROUGH_HOLDOUT and holdout not in wanted:
            wanted.append(holdout)
    if not wanted:
        return []
    named = {r.experiment_key for r in results}
    wanted = [key for key in wanted if key not in named]
    if not wanted:
        return []
    return [
        a
        for a in snapshot.evaluator.assign(unit_id, attributes, wanted, now)
        if a.reason is Reason.ASSIGNED
    ]


class Assigner:
    """Assigns units from the current snapshot."""

    def __init__(
        self, holder: SnapshotHolder, sticky: StickyStore | None, sink: ExposureSink | None
    ) -> None:
        self._holder = holder
        self._sticky = sticky
        self._sink = sink

    async def assign(
        self,
        unit_id: str,
        attributes: Mapping[str, Any],
        keys: Sequence[str],
        log_exposures: bool = True,
        *,
        forced: Mapping[str, str] | None = None,
        min_config_version: int = 0,
    ) -> tuple[Snapshot, list[Assignment]]:
        """The results for `keys` (empty: every running experiment) and the snapshot used;
        `forced` (experiment key -> variant key) and `min_config_version` as in AssignRequest."""
        check_unit_id(unit_id)
        if keys:
            check_experiment_keys(keys)
        if attributes.get(UNIT_ID_ATTRIBUTE, unit_id) is not unit_id:  # the servicer's setdefault
            check_identity(unit_id, attributes)
        if min_config_version:
            snapshot = await self._holder.wait_for(min_config_version, MIN_CONFIG_VERSION_WAIT_S)
        else:
            snapshot = self._holder.require()
        if log_exposures and snapshot.segment_names:
            check_segments(attributes, snapshot.segment_names)
        now = time.time()
        if forced:
            check_forced(snapshot, forced)
            results = snapshot.evaluator.assign(unit_id, attributes, keys, now, forced=forced)
        else:
            results = snapshot.evaluator.assign(unit_id, attributes, keys, now)
        if snapshot.fallback_keys and self._sticky is not None:
            await self._apply_hashed_sticky(snapshot, attributes, results)
        sticky_keys = snapshot.sticky_keys
        if sticky_keys and self._sticky is not None:
            candidates = [
                i
                for i, r in enumerate(results)
                if r.experiment_key in sticky_keys and r.reason in _STICKY_CANDIDATES
            ]
            if candidates:
                await self._apply_sticky(snapshot, unit_id, results, candidates)
        if log_exposures and self._sink is not None:
            exposed = results
            if snapshot.holdout_of:
                exposed = results + holdout_results(snapshot, unit_id, attributes, results, now)
            self._record(self._sink, snapshot, unit_id, attributes, exposed, now)
        return snapshot, results

    def explanations(
        self,
        snapshot: Snapshot,
        results: Sequence[Assignment],
        unit_id: str,
        attributes: Mapping[str, Any],
        keys: Sequence[str],
        forced: Mapping[str, str] | None = None,
    ) -> list[assignment_pb2.Explanation]:
        """Why each of `results` (an `assign` answer from `snapshot`) is what it is."""
        if UNIT_ID_ATTRIBUTE not in attributes:
            attributes = {UNIT_ID_ATTRIBUTE: unit_id, **attributes}
        explained = engine_api.explain(
            snapshot.evaluator, unit_id, attributes, keys, time.time(), forced or {}
        )
        for r, explanation in zip(results, explained, strict=True):
            if r.reason is Reason.STICKY and "sticky" not in explanation.detail:
                # The engine explains the hashing; stickiness is this service's doing.
                kept = f"kept variant {r.variant_key!r} from an earlier assignment (sticky)"
                explanation.detail = f"{kept}; {explanation.detail}" if explanation.detail else kept
        return explained

    async def _apply_hashed_sticky(
        self, snapshot: Snapshot, attributes: Mapping[str, Any], results: list[Assignment]
    ) -> None:
        """Sticky variants per hashed value, for the experiments with a fallback attribute: the
        variant stored for the primary attribute's value, else for the fallback's (then kept for
        the primary's too, so the unit keeps it once the fallback is gone); a first assignment
        is stored under the value hashed."""
        assert self._sticky is not None
        fallback_keys, hashing = snapshot.fallback_keys, snapshot.hashing
        plan: list[tuple[int, HashedKey | None, HashedKey | None]] = []
        for i, r in enumerate(results):
            key = r.experiment_key
            if key not in fallback_keys or r.reason not in _STICKY_CANDIDATES:
                continue
            primary, fallback = hashing[key]
            primary_value = hash_value_of(attributes.get(primary))
            fallback_value = hash_value_of(attributes.get(fallback))
            by_primary = None if primary_value is None else (key, primary, primary_value)
            by_fallback = None if fallback_value is None else (key, fallback, fallback_value)
            if by_primary is not None or by_fallback is not None:
                plan.append((i, by_primary, by_fallback))
        if not plan:
            return
        wanted = [k for _, p, f in plan for k in (p, f) if k is not None]
        stored = await self._sticky.lookup_hashed(wanted)
        fresh: dict[HashedKey, str] = {}
        carried: dict[HashedKey, str] = {}
        for i, by_primary, by_fallback in plan:
            result = results[i]
            variant_key = None if by_primary is None else stored.get(by_primary)
            if variant_key is None and by_fallback is not None:
                variant_key = stored.get(by_fallback)
                if variant_key is not None and by_primary is not None:
                    carried[by_primary] = variant_key  # the unit keeps it once signed in
            if variant_key is None:
                hashed = by_primary or by_fallback
                if result.variant_key is not None and hashed is not None:
                    fresh[hashed] = result.variant_key
                continue
            key = result.experiment_key
            index = snapshot.variant_index[key].get(variant_key)
            if index is None or index == result.variant_index:
                continue  # same variant as hashing gives (or one since removed)
            payload = snapshot.experiments[key].variants[index].payload_json
            results[i] = Assignment(
                key, variant_key, index, Reason.STICKY, payload, result.bucket, True
            )
        if carried:
            # Stored before answering, not in the background: the unit's next call (with only
            # the primary value) must find it, or hashing would hand it another variant that
            # then sticks (the write races the next call otherwise; seen on a loaded machine).
            await self._sticky.store_hashed(carried)
        if fresh:
            self._sticky.remember_hashed(fresh)

    async def _apply_sticky(
        self, snapshot: Snapshot, unit_id: str, results: list[Assignment], candidates: list[int]
    ) -> None:
        assert self._sticky is not None
        stored = await self._sticky.lookup(unit_id, [results[i].experiment_key for i in candidates])
        fresh: dict[str, str] = {}
        for i in candidates:
            result = results[i]
            key = result.experiment_key
            variant_key = stored.get(key)
            if variant_key is None:
                if result.variant_key is not None:
                    fresh[key] = result.variant_key
                continue
            index = snapshot.variant_index[key].get(variant_key)
            if index is None or index == result.variant_index:
                continue  # same variant as hashing gives: nothing to keep
            payload = snapshot.experiments[key].variants[index].payload_json
            results[i] = Assignment(
                key, variant_key, index, Reason.STICKY, payload, result.bucket, True
            )
        if fresh:
            self._sticky.remember(unit_id, fresh)

    def _record(
        self,
        sink: ExposureSink,
        snapshot: Snapshot,
        unit_id: str,
        attributes: Mapping[str, Any],
        results: list[Assignment],
        now: float,
    ) -> None:
        experiments, hashing = snapshot.experiments, snapshot.hashing
        unrecorded = sink.unrecorded(results, unit_id, _EXPOSED)
        if not unrecorded:
            return
        trace = sampled_span_context()  # the exposures join this Assign's trace when sampled
        for r in unrecorded:
            assert r.variant_key is not None
            names = snapshot.segments.get(r.experiment_key, ())
            segments = tuple(
                (name, _segment_value(attributes[name]))
                for name in names
                if attributes.get(name) is not None
            )
            hashed: tuple[str, str] = ("", "")  # the unit id itself
            if r.experiment_key in hashing:
                found = hashed_by(experiments[r.experiment_key], attributes)
                if found is not None and found[0] != UNIT_ID_ATTRIBUTE:
                    hashed = found
            sink.record(
                PendingExposure(
                    r.experiment_key,
                    r.variant_key,
                    unit_id,
                    now,
                    experiments[r.experiment_key].allocation_version,
                    segments,
                    trace,
                    *hashed,
                )
            )
