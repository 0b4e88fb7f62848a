"""The Assign use case: evaluate from the snapshot, apply sticky variants, record exposures.

No network I/O unless an experiment in the answer had its allocation changed while running (see
`sticky`); exposures go to an in-memory buffer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from verdict.evaluation import Assignment, Reason
from verdict.limits import unit_id_problem
from verdict.trace_context import sampled_span_context
from verdict_assignment.assign.exposures import ExposureSink, PendingExposure
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import Snapshot
from verdict_assignment.assign.sticky import StickyStore
from verdict_platform.errors import InvalidArgument

MAX_SEGMENT_VALUE_BYTES = 1024
"""A segment recorded with an exposure (ingest's limit on property values)."""

_STICKY_CANDIDATES = (Reason.ASSIGNED, Reason.NOT_IN_TRAFFIC)
_EXPOSED = (Reason.ASSIGNED, Reason.STICKY)  # forced units are QA traffic: not exposures


def _segment_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def check_unit_id(unit_id: str) -> None:
    """InvalidArgument unless the unit id has 1 to 256 bytes and no NUL character (PostgreSQL
    text cannot hold one: the unit's exposure would be refused by ingest, the unit lost)."""
    problem = unit_id_problem(unit_id)
    if problem is not None:
        raise InvalidArgument.of("unit_id", problem)


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
    ) -> tuple[Snapshot, list[Assignment]]:
        """The results for `keys` (empty: every running experiment) and the snapshot used."""
        check_unit_id(unit_id)
        snapshot = self._holder.require()
        if log_exposures and snapshot.segment_names:
            check_segments(attributes, snapshot.segment_names)
        now = time.time()
        results = snapshot.evaluator.assign(unit_id, attributes, keys, now)
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
            self._record(self._sink, snapshot, unit_id, attributes, results, now)
        return snapshot, results

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
        experiments = snapshot.experiments
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
            sink.record(
                PendingExposure(
                    r.experiment_key,
                    r.variant_key,
                    unit_id,
                    now,
                    experiments[r.experiment_key].allocation_version,
                    segments,
                    trace,
                )
            )
