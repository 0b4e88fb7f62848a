"""The configuration snapshot: everything `Assign` needs, prepared once per configuration version.

A snapshot is immutable; the watcher builds a new one off the hot path and swaps it in with one
reference assignment, so a request sees one consistent version from start to end. Besides the
evaluation core's `Evaluator`, it holds each possible result already encoded as the bytes of an
`AssignResponse.assignments` entry (per experiment, reason and variant, payload included; laid out
per experiment as `fastpath.table_slot` says): building a response is then a join of prebuilt byte
strings, no protobuf objects on the hot path. (A request asking for explanations is answered from
the same bytes, decoded and completed: `Assigner`'s callers pay for it, nobody else.)

It also says which experiments hash something else than the unit id (`hashing`: their exposures
record the attribute and value hashed) and which have a fallback attribute (`fallback_keys`: the
only ones whose answers look up sticky variants per hashed value).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2

from verdict.evaluation import Assignment, Evaluator, ExperimentConfig, Reason
from verdict.local import experiment_config_from_proto, saved_groups_from_proto
from verdict.v1 import assignment_pb2, experiment_pb2
from verdict_assignment.assign import fastpath
from verdict_assignment.assign.engine_api import UNIT_ID_ATTRIBUTE
from verdict_assignment.assign.fastpath import (
    COUNTED_REASONS,
    IN_EXPERIMENT_REASONS,
    OUT_OF_EXPERIMENT_REASONS,
    table_slot,
)

log = logging.getLogger(__name__)

PROTO_REASON: Mapping[Reason, assignment_pb2.AssignmentReason.ValueType] = {
    reason: assignment_pb2.AssignmentReason.Value("ASSIGNMENT_REASON_" + reason.name)
    for reason in Reason
}
"""The proto enum value of each engine reason (same names)."""


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_entry(message: assignment_pb2.Assignment) -> bytes:
    """`message` as one `AssignResponse.assignments` entry (field 1, length-delimited)."""
    body = message.SerializeToString()
    return b"\x0a" + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One configuration version, ready to serve."""

    version: int
    """config_state.version it was loaded at."""
    proto: assignment_pb2.ConfigSnapshot
    """What GetConfigSnapshot/WatchConfig serve (only the experiments the evaluator holds)."""
    evaluator: Evaluator
    """The evaluation core over the snapshot's experiments."""
    tables: Mapping[str, tuple[bytes, ...]]
    """Every result of every experiment, encoded (see module docstring)."""
    version_field: bytes
    """The encoded `config_version` field that ends each response."""
    sticky_keys: frozenset[str]
    """Running experiments whose allocation changed while running (allocation_version > 1)."""
    variant_index: Mapping[str, Mapping[str, int]]
    """Experiment key -> variant key -> index, for sticky results."""
    segments: Mapping[str, tuple[str, ...]]
    """Experiment key -> attribute names recorded with its exposures."""
    segment_names: tuple[str, ...] = ()
    """Every attribute name some running experiment records with its exposures."""
    hashing: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Experiment key -> (hash attribute, fallback attribute or "") for the experiments that
    may hash something else than the unit id: their exposures record what was hashed."""
    fallback_keys: frozenset[str] = frozenset()
    """Running experiments with a fallback attribute (and a hash attribute other than the unit
    id): their sticky variants are kept per hashed value (`sticky`), so a unit keeps its variant
    when the primary attribute appears, also across allocation changes (they are not in
    `sticky_keys`)."""
    holdout_of: Mapping[str, str] = field(default_factory=dict)
    """Running experiment key -> the running holdout covering it: a unit answered by the
    experiment is exposed to the holdout too (`assigner.holdout_results`)."""

    @property
    def experiments(self) -> Mapping[str, ExperimentConfig]:
        """The experiments, by key."""
        return self.evaluator.experiments

    def encode(
        self, results: list[Assignment], counts: MutableSequence[int] | None = None
    ) -> bytes:
        """The serialised `AssignResponse` for `results`; with `counts`
        (`fastpath.decision_counters()`), each result's reason is counted there."""
        fast = fastpath.encode(
            results, self.tables, IN_EXPERIMENT_REASONS, OUT_OF_EXPERIMENT_REASONS,
            self.version_field, counts,
        )  # fmt: skip
        return fast if fast is not None else self._encode_slowly(results, counts)

    def _encode_slowly(
        self, results: Iterable[Assignment], counts: MutableSequence[int] | None = None
    ) -> bytes:
        """`encode` when a result has no prebuilt entry (an unknown key: callers choose keys)."""
        parts = []
        for r in results:
            if counts is not None:
                counts[COUNTED_REASONS.index(r.reason)] += 1
            table = self.tables.get(r.experiment_key)
            if table is not None:
                variants = len(self.variant_index[r.experiment_key])
                parts.append(table[table_slot(r.reason, r.variant_index, variants)])
            else:
                message = assignment_pb2.Assignment(
                    experiment_key=r.experiment_key, reason=PROTO_REASON[r.reason]
                )
                parts.append(encode_entry(message))
        parts.append(self.version_field)
        return b"".join(parts)


def _encode_experiment(experiment: experiment_pb2.Experiment) -> tuple[bytes, ...]:
    """Every entry `experiment` can answer, in `table_slot` order."""
    key = experiment.key
    entries = []
    for reason in IN_EXPERIMENT_REASONS:
        for variant in experiment.variants:
            message = assignment_pb2.Assignment(
                experiment_key=key,
                variant_key=variant.key,
                reason=PROTO_REASON[reason],
                in_experiment=True,
            )
            message.payload.CopyFrom(variant.payload)
            entries.append(encode_entry(message))
    for reason in OUT_OF_EXPERIMENT_REASONS:
        message = assignment_pb2.Assignment(experiment_key=key, reason=PROTO_REASON[reason])
        entries.append(encode_entry(message))
    return tuple(entries)


def _usable(
    experiments: Sequence[experiment_pb2.Experiment], groups: Mapping[str, list[object]]
) -> list[tuple[experiment_pb2.Experiment, ExperimentConfig]]:
    """The experiments the evaluation core accepts; a broken one is logged and left out rather
    than taking every other experiment down with it."""
    usable = []
    for experiment in experiments:
        try:
            config = experiment_config_from_proto(experiment)
            Evaluator([config], groups)  # compiles its condition
        except ValueError as error:
            log.error("experiment %r left out of the snapshot: %s", experiment.key, error)
            continue
        usable.append((experiment, config))
    return usable


def build_snapshot(proto: assignment_pb2.ConfigSnapshot) -> Snapshot:
    """Prepares a loaded configuration for serving."""
    groups = saved_groups_from_proto(proto.saved_groups)
    try:
        configs = [experiment_config_from_proto(e) for e in proto.experiments]
        evaluator = Evaluator(configs, groups, buckets=False)
        kept = list(proto.experiments)
    except ValueError:
        pairs = _usable(proto.experiments, groups)
        kept = [experiment for experiment, _ in pairs]
        configs = [config for _, config in pairs]
        evaluator = Evaluator(configs, groups, buckets=False)
        served = assignment_pb2.ConfigSnapshot(
            version=proto.version, saved_groups=proto.saved_groups
        )
        served.experiments.extend(kept)
        served.create_time.CopyFrom(proto.create_time)
        proto = served
    running = {c.key for c in configs if c.running}
    hashing = {
        e.key: (e.hash_attribute or UNIT_ID_ATTRIBUTE, e.fallback_attribute)
        for e in kept
        if e.hash_attribute not in ("", UNIT_ID_ATTRIBUTE) or e.fallback_attribute
    }
    # A fallback of the unit id is never used (every request has a unit id): no lookups for it.
    fallback_keys = frozenset(
        k
        for k, (primary, fallback) in hashing.items()
        if fallback and primary != UNIT_ID_ATTRIBUTE and k in running
    )
    return Snapshot(
        version=proto.version,
        proto=proto,
        evaluator=evaluator,
        tables={experiment.key: _encode_experiment(experiment) for experiment in kept},
        version_field=b"\x10" + varint(proto.version) if proto.version > 0 else b"",
        sticky_keys=frozenset(
            c.key
            for c in configs
            if c.running and c.allocation_version > 1 and c.key not in fallback_keys
        ),
        variant_index={c.key: {v.key: i for i, v in enumerate(c.variants)} for c in configs},
        segments={e.key: tuple(e.analysis_plan.segments) for e in kept},
        segment_names=tuple(sorted({s for e in kept for s in e.analysis_plan.segments})),
        hashing=hashing,
        holdout_of={
            c.key: c.holdout_key
            for c in configs
            if c.running and c.holdout_key and c.holdout_key in running
        },
        fallback_keys=fallback_keys,
    )


_NOT_FOR_EVALUATION: tuple[Any, ...] = (
    "description",
    "hypothesis",
    "metrics",
    "stopping_rules",
    "decision",
    "rule_overrides",
    "create_time",
    "update_time",
)


def evaluation_view(experiment: experiment_pb2.Experiment) -> experiment_pb2.Experiment:
    """The experiment as the snapshot carries it: what assignment needs (variants and payloads,
    targeting, layer, hashing, schedule, forced variations, status, versions, the analysis plan's
    segments for exposures); descriptions, metrics, the rest of the analysis plan, stopping
    rules and decisions are read from ExperimentService."""
    view = experiment_pb2.Experiment()
    view.CopyFrom(experiment)
    for name in _NOT_FOR_EVALUATION:
        view.ClearField(name)
    segments = list(experiment.analysis_plan.segments)
    view.ClearField("analysis_plan")
    if segments:
        view.analysis_plan.segments.extend(segments)
    return view


def snapshot_proto(
    version: int,
    experiments: Iterable[experiment_pb2.Experiment],
    saved_groups: Iterable[experiment_pb2.SavedGroup] = (),
) -> assignment_pb2.ConfigSnapshot:
    """A `ConfigSnapshot` stamped with the current time."""
    proto = assignment_pb2.ConfigSnapshot(version=version)
    proto.experiments.extend(evaluation_view(e) for e in experiments)
    proto.saved_groups.extend(saved_groups)
    now = timestamp_pb2.Timestamp()
    now.FromNanoseconds(time.time_ns())
    proto.create_time.CopyFrom(now)
    return proto
