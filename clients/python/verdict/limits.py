"""The documented limits of every request, and the checker that enforces them at the door (pure).

Every service runs `RequestLimits.problems` on each request before its handler (the platform's
guard), so no input can make a service store what it cannot read back, nest deeper than protobuf
or PostgreSQL's JSON can, or carry bytes PostgreSQL's text cannot hold. The rules, also stated in
each proto file's header and in the field comments that differ from them:

- strings: at most `DEFAULT_STRING_BYTES` bytes of UTF-8 unless `FIELD_LIMITS` says otherwise,
  and no NUL character (PostgreSQL text cannot store one);
- repeated fields and maps: at most `DEFAULT_ITEMS` entries unless `FIELD_LIMITS` says otherwise;
- JSON values (`google.protobuf.Struct`, `Value`, `ListValue`): at most `DEFAULT_JSON_BYTES`
  serialised unless `FIELD_LIMITS` says otherwise, at most `MAX_JSON_DEPTH` levels of objects and
  arrays, finite numbers only, no NUL in keys or strings;
- timestamps within years 1 to 9999 with nanos in [0, 1e9); durations within +-10,000 years
  with nanos of the same sign and below 1e9 in magnitude.

A few methods check their own input item by item, because they answer per item instead of
refusing the whole request (IngestService: a batch's valid events land; AssignmentService.Assign
decodes its request in C; ingest's OTLP trace intake answers bad spans with OTLP partial
success): `SELF_CHECKED` lists them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = [
    "DEFAULT_ITEMS",
    "DEFAULT_JSON_BYTES",
    "DEFAULT_STRING_BYTES",
    "FIELD_LIMITS",
    "MAX_JSON_DEPTH",
    "MAX_UNIT_ID_BYTES",
    "SELF_CHECKED",
    "FieldLimit",
    "RequestLimits",
    "Violation",
    "unit_id_problem",
]

KIB = 1024
DEFAULT_STRING_BYTES = 256
"""Keys, names, ids, tokens: any string a field comment gives no other limit."""
DEFAULT_ITEMS = 100
"""Entries of a list or map a field comment gives no other limit."""
DEFAULT_JSON_BYTES = 16 * KIB
"""Serialised size of a JSON value (Struct) a field comment gives no other limit."""
MAX_JSON_DEPTH = 10
"""Levels of nested objects and arrays in any JSON value (protobuf's own limit is 100 message
levels, and each JSON level costs two)."""
MAX_UNIT_ID_BYTES = 256
"""A unit id (Assign, events, exposures): 1 to 256 bytes of UTF-8, no NUL."""

_MIN_TIMESTAMP_S = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_S = 315_576_000_000  # 10,000 years, protobuf's own bound


@dataclass(frozen=True)
class FieldLimit:
    """A limit other than the defaults, for one field (by its full proto name)."""

    max_bytes: int | None = None
    """Strings: UTF-8 bytes; JSON values: serialised bytes; each element of a repeated field."""
    max_items: int | None = None
    """Repeated fields and maps: entries."""


FIELD_LIMITS: dict[str, FieldLimit] = {
    "verdict.v1.Experiment.name": FieldLimit(max_bytes=256),
    "verdict.v1.Experiment.description": FieldLimit(max_bytes=16 * KIB),
    "verdict.v1.Experiment.hypothesis": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.Experiment.variants": FieldLimit(max_items=20),
    "verdict.v1.Experiment.metrics": FieldLimit(max_items=50),
    "verdict.v1.Experiment.forced_variations": FieldLimit(max_items=1000),
    "verdict.v1.Experiment.rule_overrides": FieldLimit(max_items=10),
    "verdict.v1.Experiment.targeting": FieldLimit(max_bytes=16 * KIB),
    "verdict.v1.Variant.description": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.Variant.payload": FieldLimit(max_bytes=64 * KIB),
    "verdict.v1.AnalysisPlan.segments": FieldLimit(max_items=10),
    "verdict.v1.StopDecision.reason": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.RuleOverride.reason": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.StartExperimentRequest.reason": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.StartExperimentRequest.rule_overrides": FieldLimit(max_items=10),
    "verdict.v1.StopExperimentRequest.reason": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.Metric.description": FieldLimit(max_bytes=4 * KIB),
    "verdict.v1.SavedGroup.values": FieldLimit(max_items=100_000, max_bytes=256),
    "verdict.v1.ListExperimentsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.ListMetricsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.ListSavedGroupsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.ListAuditEventsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.ListResultSnapshotsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.ListAlertsRequest.page_token": FieldLimit(max_bytes=KIB),
    "verdict.v1.Segment.value": FieldLimit(max_bytes=KIB),
    "verdict.v1.ImportGrowthBookRequest.payload_json": FieldLimit(max_bytes=4 * KIB * KIB),
}
"""The limits that differ from the defaults; each is also stated in its field's proto comment
(a test reads the protos and holds the two equal)."""

SELF_CHECKED = frozenset(
    {
        "/verdict.v1.AssignmentService/Assign",
        "/verdict.v1.IngestService/TrackEvents",
        "/verdict.v1.IngestService/StreamEvents",
        "/verdict.v1.IngestService/TrackExposures",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    }
)
"""Methods whose own validation enforces these rules item by item (see the module docstring)."""


@dataclass(frozen=True)
class Violation:
    """A field over its limit: its path in the request and what is wrong."""

    field: str
    description: str


def unit_id_problem(unit_id: str) -> str | None:
    """What is wrong with a unit id (empty, over 256 bytes, a NUL), or None."""
    if not unit_id:
        return "must not be empty"
    if len(unit_id) > MAX_UNIT_ID_BYTES // 4 and len(unit_id.encode()) > MAX_UNIT_ID_BYTES:
        return f"must be at most {MAX_UNIT_ID_BYTES} bytes"
    if "\x00" in unit_id:
        return "must not contain NUL characters"
    return None


def _string_problem(value: str, limit: int) -> str | None:
    if len(value) > limit // 4 and len(value.encode()) > limit:
        return f"is {len(value.encode())} bytes; at most {limit} allowed"
    if "\x00" in value:
        return "must not contain NUL characters"
    return None


_JSON_TYPES = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)


@dataclass(frozen=True)
class RequestLimits:
    """The limits in force (the defaults, overridden per field by `FIELD_LIMITS` and by operators'
    settings) and the checker."""

    fields: Mapping[str, FieldLimit] = field(default_factory=lambda: dict(FIELD_LIMITS))
    max_json_depth: int = MAX_JSON_DEPTH

    def with_field(self, full_name: str, limit: FieldLimit) -> RequestLimits:
        """These limits with one field's replaced (an operator's setting)."""
        return replace(self, fields={**self.fields, full_name: limit})

    def limit_of(self, f: FieldDescriptor) -> FieldLimit:
        """The limit of a field: its own, else the defaults for its kind."""
        return self.fields.get(f.full_name, FieldLimit())

    def problems(self, message: Message, prefix: str = "") -> list[Violation]:
        """Every violation in `message` (all of them, so a caller can fix them at once)."""
        return list(self._message(message, prefix))

    def _message(self, message: Message, prefix: str) -> Iterator[Violation]:
        for f, value in message.ListFields():
            path = f"{prefix}.{f.name}" if prefix else f.name
            yield from self._field(f, value, path)

    def _field(self, f: FieldDescriptor, value: Any, path: str) -> Iterator[Violation]:
        limit = self.limit_of(f)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            yield from self._map(f, value, path, limit)
            return
        if f.is_repeated:
            most = limit.max_items or DEFAULT_ITEMS
            if len(value) > most:
                yield Violation(path, f"has {len(value)} entries; at most {most} allowed")
                return
            for i, item in enumerate(value):
                yield from self._single(f, item, f"{path}[{i}]", limit)
            return
        yield from self._single(f, value, path, limit)

    def _map(
        self, f: FieldDescriptor, value: Any, path: str, limit: FieldLimit
    ) -> Iterator[Violation]:
        most = limit.max_items or DEFAULT_ITEMS
        if len(value) > most:
            yield Violation(path, f"has {len(value)} entries; at most {most} allowed")
            return
        entry = f.message_type
        assert entry is not None
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for key, item in value.items():
            at = f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]"
            if isinstance(key, str):
                problem = _string_problem(
                    key, self.limit_of(key_field).max_bytes or DEFAULT_STRING_BYTES
                )
                if problem is not None:
                    yield Violation(at, f"key {problem}")
                    continue
            yield from self._single(value_field, item, at, self.limit_of(value_field))

    def _single(
        self, f: FieldDescriptor, value: Any, path: str, limit: FieldLimit
    ) -> Iterator[Violation]:
        if f.type == FieldDescriptor.TYPE_STRING:
            problem = _string_problem(value, limit.max_bytes or DEFAULT_STRING_BYTES)
            if problem is not None:
                yield Violation(path, problem)
            return
        if f.message_type is None:
            return
        name = f.message_type.full_name
        if name in _JSON_TYPES:
            yield from self._json(value, path, limit.max_bytes or DEFAULT_JSON_BYTES)
        elif name == "google.protobuf.Timestamp":
            if not (_MIN_TIMESTAMP_S <= value.seconds <= _MAX_TIMESTAMP_S):
                yield Violation(path, "must be between years 1 and 9999")
            elif not 0 <= value.nanos < 1_000_000_000:
                yield Violation(path, "nanos must be in [0, 999999999]")
        elif name == "google.protobuf.Duration":
            seconds, nanos = value.seconds, value.nanos
            if abs(seconds) > _MAX_DURATION_S or abs(nanos) >= 1_000_000_000:
                yield Violation(path, "must be within 10,000 years, nanos below 1e9")
            elif (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
                yield Violation(path, "seconds and nanos must have the same sign")
        elif name == "google.protobuf.FieldMask":
            if len(value.paths) > DEFAULT_ITEMS:
                yield Violation(path, f"names {len(value.paths)} paths; at most {DEFAULT_ITEMS}")
            for i, item in enumerate(value.paths):
                problem = _string_problem(item, DEFAULT_STRING_BYTES)
                if problem is not None:
                    yield Violation(f"{path}.paths[{i}]", problem)
        else:
            yield from self._message(value, path)

    def _json(self, value: Message, path: str, most: int) -> Iterator[Violation]:
        size = value.ByteSize()
        if size > most:
            yield Violation(path, f"is {size} bytes serialised; at most {most} allowed")
            return
        yield from _json_problems(value, path, 0, self.max_json_depth)


def _json_problems(node: Message, path: str, depth: int, most: int) -> Iterator[Violation]:
    """NUL, non-finite numbers and nesting deeper than `most` in a Struct/Value/ListValue."""
    kind = node.DESCRIPTOR.full_name
    if kind == "google.protobuf.Struct":
        if depth >= most:
            yield Violation(path, f"nests deeper than {most} levels")
            return
        for key, item in node.fields.items():  # type: ignore[attr-defined]
            if "\x00" in key:
                yield Violation(path, "keys must not contain NUL characters")
                continue
            yield from _json_problems(item, f"{path}.{key}", depth + 1, most)
    elif kind == "google.protobuf.ListValue":
        if depth >= most:
            yield Violation(path, f"nests deeper than {most} levels")
            return
        for i, item in enumerate(node.values):  # type: ignore[attr-defined]
            yield from _json_problems(item, f"{path}[{i}]", depth + 1, most)
    else:  # Value
        which = node.WhichOneof("kind")
        if which == "struct_value":
            yield from _json_problems(node.struct_value, path, depth, most)  # type: ignore[attr-defined]
        elif which == "list_value":
            yield from _json_problems(node.list_value, path, depth, most)  # type: ignore[attr-defined]
        elif which == "string_value" and "\x00" in node.string_value:  # type: ignore[attr-defined]
            yield Violation(path, "must not contain NUL characters")
        elif which == "number_value" and not math.isfinite(node.number_value):  # type: ignore[attr-defined]
            yield Violation(path, "must be a finite number (JSON has no NaN or infinity)")
