"""Validation of events and exposures: pure, per item, with the reason returned.

The documented limits (also in `protos/verdict/v1/ingest.proto`):

- ``event_id``: a UUID in its canonical text form (8-4-4-4-12 hex digits, any case). It is the
  idempotency key together with the timestamp: a retry resends the identical event, so the
  storage deduplicates on ``(timestamp, event_id)``. A reused event_id with a *different*
  timestamp is a different event (and is stored).
- ``unit_id``: 1 to 256 bytes of UTF-8, no NUL character (PostgreSQL text cannot hold one).
- ``name``: a lowercase letter, then up to 127 lowercase letters, digits, ``_``, ``.`` or ``-``
  (e.g. ``llm.call``, ``feedback.thumbs_up``).
- ``timestamp``: set, and within ``[now - past window, now + future window]`` (defaults: 7 days
  back, 5 minutes ahead; `IngestSettings`).
- ``measures``: at most 64; names are 1 to 128 characters, a letter then letters, digits, ``_``,
  ``.`` or ``-``; values finite (no NaN, no infinity).
- ``properties``: at most 64; keys as measure names; values at most 1024 bytes of UTF-8,
  without NUL characters.
- exposures: ``experiment_key`` a slug (lowercase letters, digits, ``-``, ``_``; 1 to 64
  characters), ``variant_key`` 1 to 64 characters of the same, ``unit_id`` as above, timestamp in
  the same window as events, at most 64 segments with keys as above and values of at most 1024
  bytes; ``hash_attribute`` and ``hash_value`` (the attribute and value hashed to bucket the
  unit) at most 256 bytes each, without NUL characters, and both set or both empty (empty: the
  unit id was hashed); with ``hash_attribute`` ``"id"`` (the unit id, by name), ``hash_value``
  is the unit id, so that analysis, which counts each hashed value as one unit, sees one
  identity per unit however the sender spells it.

Items are checked as they come from the wire (anything with the attributes of `EventLike`).
The events' hot loop lives in `encoding`, which validates and encodes in one pass and defers to
`event_problem` here for anything its fast path does not accept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from verdict.limits import DEFAULT_STRING_BYTES, unit_id_problem
from verdict_platform.errors import FieldViolation, InvalidArgument

MAX_MEASURES = 64
MAX_PROPERTIES = 64
MAX_PROPERTY_VALUE_BYTES = 1024
MAX_HASH_BYTES = DEFAULT_STRING_BYTES
"""An exposure's ``hash_attribute`` and ``hash_value``: the proto's default string limit."""
UNIT_ID_ATTRIBUTE = "id"
"""The hash attribute that names the unit id itself (the default)."""

UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.\-]{0,127}")
KEY_PATTERN = r"[A-Za-z][A-Za-z0-9_.\-]{0,127}"
_ONE_KEY = re.compile(KEY_PATTERN)
# Keys joined by "," (which no key contains), checked in one call.
KEYS_PATTERN = re.compile(rf"{KEY_PATTERN}(?:,{KEY_PATTERN})*")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

KEY_RULE = "must be 1 to 128 characters: a letter, then letters, digits, '_', '.' or '-'"


class TimestampLike(Protocol):
    """A google.protobuf.Timestamp, as far as validation reads it."""

    @property
    def seconds(self) -> int: ...
    @property
    def nanos(self) -> int: ...


class EventLike(Protocol):
    """An event as received (a verdict.v1.Event)."""

    @property
    def event_id(self) -> str: ...
    @property
    def unit_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def timestamp(self) -> TimestampLike: ...
    @property
    def measures(self) -> Mapping[str, float]: ...
    @property
    def properties(self) -> Mapping[str, str]: ...


class ExposureLike(Protocol):
    """An exposure as received (a verdict.v1.Exposure)."""

    @property
    def experiment_key(self) -> str: ...
    @property
    def variant_key(self) -> str: ...
    @property
    def unit_id(self) -> str: ...
    @property
    def timestamp(self) -> TimestampLike: ...
    @property
    def allocation_version(self) -> int: ...
    @property
    def segments(self) -> Mapping[str, str]: ...
    @property
    def hash_attribute(self) -> str: ...
    @property
    def hash_value(self) -> str: ...


@dataclass(frozen=True)
class Rejection:
    """Why the item at `index` of a batch was rejected."""

    index: int
    field: str
    reason: str


@dataclass(frozen=True)
class ExposureRow:
    """A valid exposure, ready to store."""

    index: int
    """Its position in the batch."""
    experiment_key: str
    unit_id: str
    variant_key: str
    exposed_at: datetime
    allocation_version: int
    segments: dict[str, str]
    hash_attribute: str = ""
    """The attribute hashed; empty: the unit id."""
    hash_value: str = ""
    """The value hashed (analysis counts each as one unit); empty: the unit id."""


@dataclass(frozen=True)
class CheckedExposures:
    """Exposures after validation."""

    rows: list[ExposureRow]
    rejections: list[Rejection]


@dataclass(frozen=True)
class TimeWindow:
    """Accepted timestamps, relative to the server clock."""

    past_s: int = 7 * 86_400
    future_s: int = 300


_unit_problem = unit_id_problem


def _value_too_long(value: str) -> bool:
    limit = MAX_PROPERTY_VALUE_BYTES
    return len(value) > limit // 4 and len(value.encode()) > limit


def _map_problem(
    what: str, keys: Sequence[str], values: Sequence[str], most: int
) -> tuple[str, str] | None:
    if len(keys) > most:
        return what, f"at most {most} entries"
    if keys and KEYS_PATTERN.fullmatch(",".join(keys)) is None:
        bad = next(k for k in keys if _ONE_KEY.fullmatch(k) is None)
        return f"{what}[{bad}]", f"key {KEY_RULE}"
    for k, v in zip(keys, values, strict=True):
        if _value_too_long(v):
            return f"{what}[{k}]", f"value must be at most {MAX_PROPERTY_VALUE_BYTES} bytes"
        if "\x00" in v:
            return f"{what}[{k}]", "value must not contain NUL characters"
    return None


def _window_problem(ts: TimestampLike, now_s: float, window: TimeWindow) -> str | None:
    seconds = ts.seconds
    if seconds == 0 and ts.nanos == 0:
        return "must be set"
    if not 0 <= ts.nanos < 1_000_000_000:
        return "nanos must be in [0, 999999999]"
    if seconds < now_s - window.past_s:
        return f"is more than {window.past_s} s in the past"
    if seconds > now_s + window.future_s:
        return f"is more than {window.future_s} s in the future"
    return None


def event_problem(event: EventLike, now_s: float, window: TimeWindow) -> tuple[str, str] | None:
    """The first problem of an event, as (field, reason); None when it is valid.

    The reference statement of the rules; `encoding.EventEncoder` has a faster path that must
    accept exactly the same events (the tests check both against one table).
    """
    if UUID_PATTERN.fullmatch(event.event_id) is None:
        return "event_id", "must be a UUID (8-4-4-4-12 hex digits)"
    unit = _unit_problem(event.unit_id)
    if unit is not None:
        return "unit_id", unit
    if NAME_PATTERN.fullmatch(event.name) is None:
        return "name", (
            "must be a lowercase letter, then up to 127 lowercase letters, digits, '_', '.' or '-'"
        )
    when = _window_problem(event.timestamp, now_s, window)
    if when is not None:
        return "timestamp", when
    m_names = list(event.measures.keys())
    if len(m_names) > MAX_MEASURES:
        return "measures", f"at most {MAX_MEASURES} entries"
    if m_names and KEYS_PATTERN.fullmatch(",".join(m_names)) is None:
        bad = next(k for k in m_names if _ONE_KEY.fullmatch(k) is None)
        return f"measures[{bad}]", f"name {KEY_RULE}"
    for k, v in event.measures.items():
        if not math.isfinite(v):
            return f"measures[{k}]", f"must be finite, not {v}"
    props = event.properties
    return _map_problem("properties", list(props.keys()), list(props.values()), MAX_PROPERTIES)


def check_exposures(
    exposures: Sequence[ExposureLike], now_s: float, window: TimeWindow
) -> CheckedExposures:
    """Splits a batch of exposures into valid rows and rejections."""
    rows: list[ExposureRow] = []
    rejections: list[Rejection] = []
    for index, e in enumerate(exposures):
        problem = _exposure_problem(e, now_s, window)
        if problem is not None:
            rejections.append(Rejection(index, problem[0], problem[1]))
            continue
        ts = e.timestamp
        rows.append(
            ExposureRow(
                index=index,
                experiment_key=e.experiment_key,
                unit_id=e.unit_id,
                variant_key=e.variant_key,
                exposed_at=_EPOCH + timedelta(0, ts.seconds, ts.nanos // 1000),
                allocation_version=e.allocation_version,
                segments=dict(e.segments),
                hash_attribute=e.hash_attribute,
                hash_value=e.hash_value,
            )
        )
    return CheckedExposures(rows, rejections)


def _exposure_problem(e: ExposureLike, now_s: float, window: TimeWindow) -> tuple[str, str] | None:
    if _SLUG.fullmatch(e.experiment_key) is None:
        return "experiment_key", "must be a slug: 1 to 64 lowercase letters, digits, '-' or '_'"
    if _SLUG.fullmatch(e.variant_key) is None:
        return "variant_key", "must be a slug: 1 to 64 lowercase letters, digits, '-' or '_'"
    unit = _unit_problem(e.unit_id)
    if unit is not None:
        return "unit_id", unit
    when = _window_problem(e.timestamp, now_s, window)
    if when is not None:
        return "timestamp", when
    if e.allocation_version < 0:
        return "allocation_version", "must not be negative"
    segments = e.segments
    found = _map_problem("segments", list(segments.keys()), list(segments.values()), MAX_PROPERTIES)
    return found or _hash_problem(e)


def _text_problem(value: str, limit: int) -> str | None:
    if len(value) > limit // 4 and len(value.encode()) > limit:
        return f"must be at most {limit} bytes"
    if "\x00" in value:
        return "must not contain NUL characters"
    return None


def _hash_problem(e: ExposureLike) -> tuple[str, str] | None:
    """What is wrong with the hashed attribute and value: each is the other's condition."""
    attribute, value = e.hash_attribute, e.hash_value
    if not attribute and not value:
        return None  # the unit id was hashed
    for name, text in (("hash_attribute", attribute), ("hash_value", value)):
        problem = _text_problem(text, MAX_HASH_BYTES)
        if problem is not None:
            return name, problem
    if not value:
        return "hash_value", "is required when hash_attribute is set"
    if not attribute:
        return "hash_attribute", "is required when hash_value is set"
    if attribute == UNIT_ID_ATTRIBUTE and value != e.unit_id:
        return "hash_value", f"must equal unit_id when hash_attribute is {UNIT_ID_ATTRIBUTE!r}"
    return None


def known_exposures(
    rows: Sequence[ExposureRow], variants: Mapping[str, frozenset[str]]
) -> tuple[list[ExposureRow], list[Rejection]]:
    """The rows whose experiment exists (not a draft) and has their variant; a rejection for
    each other one (an exposure to nothing would be counted by no analysis, silently)."""
    kept: list[ExposureRow] = []
    rejected: list[Rejection] = []
    for row in rows:
        known = variants.get(row.experiment_key)
        if known is None:
            rejected.append(
                Rejection(
                    row.index, "experiment_key", f"no started experiment {row.experiment_key!r}"
                )
            )
        elif row.variant_key not in known:
            rejected.append(
                Rejection(
                    row.index,
                    "variant_key",
                    f"{row.variant_key!r} is not a variant of {row.experiment_key!r}",
                )
            )
        else:
            kept.append(row)
    return kept, rejected


@dataclass(frozen=True)
class BatchLimits:
    """Limits of one request message (`IngestSettings`)."""

    max_items: int = 5000
    max_bytes: int = 8 * 1024 * 1024


def check_batch(
    id_field: str, batch_id: str, items_field: str, count: int, size_bytes: int, limits: BatchLimits
) -> None:
    """Raises InvalidArgument for a malformed batch: no id, no items, too many, too large."""
    violations = []
    if not batch_id:
        violations.append(FieldViolation(id_field, "is required"))
    elif len(batch_id) > 128:
        violations.append(FieldViolation(id_field, "must be at most 128 characters"))
    elif "\x00" in batch_id:
        violations.append(FieldViolation(id_field, "must not contain NUL characters"))
    if count == 0:
        violations.append(FieldViolation(items_field, "must not be empty"))
    elif count > limits.max_items:
        violations.append(FieldViolation(items_field, f"at most {limits.max_items} per batch"))
    if size_bytes > limits.max_bytes:
        violations.append(
            FieldViolation(items_field, f"batch is {size_bytes} bytes, over {limits.max_bytes}")
        )
    if violations:
        raise InvalidArgument(violations)
