"""One pass over a batch of wire events: validate each, encode the valid ones as binary COPY data.

This is the service's hot loop (the benchmark's bottleneck is per-event Python work), so it
validates and encodes in the same pass, straight from the protobuf objects: no intermediate dict
or row tuple, no datetime per event (timestamps stay integer microseconds), and small bounded
caches for what repeats across events (event names, measure-name sets: validated and encoded
once). Its fast path accepts only events that `validation.event_problem` accepts; anything else
is decided by `event_problem`, so the documented rules have a single statement. Pure: no I/O.

COPY BINARY layout (PostgreSQL docs): a signature and two int32 header fields; per row an int16
field count and, per field, an int32 length and the value's binary send format; an int16 -1 at
the end. An array is int32 ndim, int32 has-null flag, uint32 element type OID, per dimension
int32 size and int32 lower bound, then each element with its int32 length. jsonb is a version
byte (1) and the JSON text; timestamptz is int64 microseconds since 2000-01-01 UTC.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring

from verdict.limits import MAX_UNIT_ID_BYTES
from verdict_ingest.validation import (
    KEY_PATTERN,
    KEYS_PATTERN,
    MAX_MEASURES,
    NAME_PATTERN,
    EventLike,
    Rejection,
    TimeWindow,
    event_problem,
)

COLUMNS = (
    "ts",
    "event_id",
    "unit_id",
    "name",
    "measure_names",
    "measure_values",
    "properties",
)
"""The columns of `events` the COPY data fills, in order."""

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
TEXT_OID, FLOAT8_OID = 25, 701
CACHE_LIMIT = 4096

_JSON_STRING = r'"(?:[^"\\]|\\[^u]|\\u(?!0000))*"'  # a JSON string holding no NUL
_PROPERTIES_JSON = re.compile(
    rf"\{{(?:\"{KEY_PATTERN}\":{_JSON_STRING}(?:,\"{KEY_PATTERN}\":{_JSON_STRING})*)?\}}"
)
_ROW_START = struct.Struct(">hiqi")  # field count, ts length, ts, uuid length
_LENGTH = struct.Struct(">i")
_EMPTY_FLOAT8_ARRAY = struct.pack(">iiiI", 12, 0, 0, FLOAT8_OID)
_NO_MEASURES: tuple[tuple[str, ...], tuple[float, ...]] = ((), ())


@dataclass(frozen=True)
class EncodedBatch:
    """The valid events of a batch as COPY data, and the rejections of the others."""

    data: bytes
    count: int
    rejections: Sequence[Rejection]
    first_us: int
    """Earliest timestamp (Unix microseconds) among the encoded events; 0 when none."""
    last_us: int
    """Latest timestamp among the encoded events; 0 when none."""


def text_field(text: str) -> bytes:
    """A text value with its length."""
    data = text.encode()
    return _LENGTH.pack(len(data)) + data


def text_array_field(items: Sequence[str]) -> bytes:
    """A one-dimensional text[] value with its length."""
    if not items:
        body = struct.pack(">iiI", 0, 0, TEXT_OID)
    else:
        body = struct.pack(">iiIii", 1, 0, TEXT_OID, len(items), 1) + b"".join(
            text_field(item) for item in items
        )
    return _LENGTH.pack(len(body)) + body


class _Float8Arrays:
    """Packs float8[] values with one precompiled struct per length."""

    def __init__(self) -> None:
        self._by_length: dict[int, tuple[struct.Struct, list[float | int]]] = {}

    def field(self, values: Sequence[float]) -> bytes:
        n = len(values)
        if n == 0:
            return _EMPTY_FLOAT8_ARRAY
        known = self._by_length.get(n)
        if known is None:
            known = self._by_length[n] = (
                struct.Struct(">iiiIii" + "id" * n),
                [20 + 12 * n, 1, 0, FLOAT8_OID, n, 1, *([8, 0.0] * n)],
            )
        packer, template = known
        args = template.copy()
        args[7::2] = values
        return packer.pack(*args)


def _uuid_bytes(event_id: str) -> bytes | None:
    """The 16 bytes of a canonical 8-4-4-4-12 UUID, or None."""
    if (
        len(event_id) != 36
        or event_id[8] != "-"
        or event_id[13] != "-"
        or event_id[18] != "-"
        or event_id[23] != "-"
    ):
        return None
    try:
        raw = bytes.fromhex(event_id.replace("-", ""))
    except ValueError:
        return None
    return raw if len(raw) == 16 else None  # fromhex skips spaces: count what it made


def properties_json(properties: Mapping[str, str]) -> str:
    """Properties as a JSON object (keys need no escaping once valid)."""
    return "{" + ",".join([f'"{k}":{encode_basestring(v)}' for k, v in properties.items()]) + "}"


class EventEncoder:
    """Validates and encodes batches; holds the caches (one per service, not thread-safe)."""

    def __init__(self, window: TimeWindow) -> None:
        self._window = window
        self._names: dict[str, bytes] = {}
        self._measure_names: dict[tuple[str, ...], bytes] = {}
        self._floats = _Float8Arrays()

    def encode(self, events: Sequence[EventLike], now_s: float) -> EncodedBatch:
        """Encodes the valid events of `events`; rejects the others with their reason."""
        names = self._names
        measure_names = self._measure_names
        if len(names) > CACHE_LIMIT or len(measure_names) > CACHE_LIMIT:
            names.clear()
            measure_names.clear()
        float_field = self._floats.field
        row_start = _ROW_START.pack
        length = _LENGTH.pack
        props_match = _PROPERTIES_JSON.fullmatch
        encode_str = encode_basestring
        isfinite = math.isfinite
        lo = now_s - self._window.past_s
        hi = now_s + self._window.future_s
        first_us = last_us = 0
        rejections: list[Rejection] = []
        parts = [SIGNATURE]
        append = parts.append
        for index, event in enumerate(events):
            event_id = event.event_id
            unit_id = event.unit_id
            name = event.name
            ts = event.timestamp
            seconds = ts.seconds
            measures = event.measures
            m_names, m_values = zip(*measures.items(), strict=True) if measures else _NO_MEASURES
            props = (
                "{"
                + ",".join([f'"{k}":{encode_str(v)}' for k, v in event.properties.items()])
                + "}"
            )
            uuid_bytes = _uuid_bytes(event_id)
            name_field = names.get(name)
            names_field = measure_names.get(m_names)
            # Fast path, for the typical valid event. A finite sum proves every value finite
            # (NaN and infinities propagate); a properties text of at most 256 characters holds
            # at most 36 entries whose values are at most 256 characters (so 1024 bytes), and
            # its pattern checks the keys and refuses NUL.
            if (
                uuid_bytes is not None
                and 0 < len(unit_id) <= MAX_UNIT_ID_BYTES // 4
                and "\x00" not in unit_id
                and lo <= seconds <= hi
                and 0 <= ts.nanos < 1_000_000_000
                and isfinite(sum(m_values))
                and len(props) <= 256
                and props_match(props) is not None
                and (name_field is not None or NAME_PATTERN.fullmatch(name) is not None)
                and (
                    names_field is not None
                    or (
                        len(m_names) <= MAX_MEASURES
                        and (not m_names or KEYS_PATTERN.fullmatch(",".join(m_names)) is not None)
                    )
                )
            ):
                pass
            else:
                problem = event_problem(event, now_s, self._window)
                if problem is not None:
                    rejections.append(Rejection(index, problem[0], problem[1]))
                    continue
                # Valid after all (a long unit id or property value, a sum that overflowed):
                # encode it without the fast path's assumptions.
                uuid_bytes = bytes.fromhex(event_id.replace("-", ""))
                props = properties_json(event.properties)
            if name_field is None:
                name_field = names[name] = text_field(name)
            if names_field is None:
                names_field = measure_names[m_names] = text_array_field(m_names)
            ts_us = seconds * 1_000_000 + ts.nanos // 1000
            if first_us == 0 or ts_us < first_us:
                first_us = ts_us
            if ts_us > last_us:
                last_us = ts_us
            unit = unit_id.encode()
            jsonb = props.encode()
            append(
                b"".join(
                    (
                        row_start(7, 8, ts_us - PG_EPOCH_US, 16),
                        uuid_bytes,
                        length(len(unit)),
                        unit,
                        name_field,
                        names_field,
                        float_field(m_values),
                        length(len(jsonb) + 1),
                        b"\x01",
                        jsonb,
                    )
                )
            )
        append(TRAILER)
        count = len(parts) - 2
        return EncodedBatch(b"".join(parts) if count else b"", count, rejections, first_us, last_us)
