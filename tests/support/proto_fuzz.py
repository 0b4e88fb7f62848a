"""Hypothesis strategies derived from protobuf descriptors: any request of any RPC, with the
values careful code forgets (NUL, huge and multibyte text, extreme and non-finite numbers, unknown
enum values, deep JSON, out-of-range timestamps), plus raw bytes: corrupted encodings of such
requests and plain noise.

`request_strategy(descriptor)` builds messages field by field from the descriptor, so a new RPC
or field is fuzzed without anyone writing a strategy for it. `KNOWN_WORDS` mixes in keys that
exist in the fuzzed deployment so that some requests reach real code paths, not only "not found".
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

KNOWN_WORDS = ["fuzz-exp", "fuzz-metric", "fuzz-group", "control", "treatment", "id", "country"]
"""Keys the fuzz fixture creates (an experiment, a metric, a saved group, variants, attributes)."""

_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

nasty_text = st.one_of(
    st.sampled_from(KNOWN_WORDS),
    st.text(max_size=12),
    st.sampled_from(["", "\x00", "a\x00b", "é" * 130, "𝔘" * 70, " ", "$regex", "^(a+)+$"]),
    st.text(min_size=200, max_size=300),
    st.builds(lambda n: "x" * n, st.sampled_from([255, 256, 257, 1025, 4097, 16_385, 70_000])),
)

nasty_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-12, 1e-300, 1e300, 0.5, 1.0, 1.0000001, -1.0, math.nan]),
)


def _int_strategy(field_type: int) -> st.SearchStrategy[int]:
    low, high = _INT_BOUNDS[field_type]
    return st.one_of(
        st.integers(min(low, 0), max(high, 0)).filter(lambda n: low <= n <= high),
        st.sampled_from([v for v in (0, 1, -1, 2, 100, 10_000, low, high) if low <= v <= high]),
    )


json_leaf = st.one_of(st.none(), st.booleans(), nasty_floats, nasty_text)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=30,
)


def _deep(depth: int) -> Any:
    value: Any = {"plan": "pro"}
    for i in range(depth):
        value = {"$and": [value]} if i % 2 else {"$not": value}
    return value


json_objects = st.one_of(
    st.dictionaries(nasty_text, json_values, max_size=5),
    st.builds(_deep, st.integers(1, 40)),
    st.sampled_from(
        [
            {"country": {"$in": ["FR", "DE"]}},
            {"email": {"$regex": "^(a+)+$"}},
            {"x": {"$foo": 1}},
            {"x": {"$in": "not-a-list"}},
            {"$or": "nope"},
        ]
    ),
)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct | None:
    struct = struct_pb2.Struct()
    try:
        struct.update(value)
    except (ValueError, TypeError, RecursionError):
        return None
    return struct


def _value(value: Any) -> struct_pb2.Value | None:
    holder = _struct({"v": value})
    return None if holder is None else holder.fields["v"]


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type == FieldDescriptor.TYPE_STRING:
        return nasty_text
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return nasty_floats
    if f.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 50))
    return _int_strategy(f.type)


def _message_strategy(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message | None]:
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return json_objects.map(_struct)
    if name == "google.protobuf.Value":
        return json_values.map(_value)
    if name == "google.protobuf.ListValue":
        return st.lists(json_values, max_size=5).map(
            lambda items: (s := _struct({"l": items})) and s.fields["l"].list_value
        )
    if name == "google.protobuf.Timestamp" or name == "google.protobuf.Duration":
        cls = GetMessageClass(descriptor)
        return st.builds(
            lambda s, n: cls(seconds=s, nanos=n),
            st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([0, 1_900_000_000])),
            st.one_of(st.integers(-(2**31), 2**31 - 1), st.just(0)),
        )
    if depth > 6:
        return st.none()
    return request_strategy(descriptor, depth + 1)


def _field_value(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if f.message_type is not None:
        if f.message_type.GetOptions().map_entry:
            key_f, value_f = (
                f.message_type.fields_by_name["key"],
                f.message_type.fields_by_name["value"],
            )
            return st.dictionaries(
                _scalar(key_f), _field_value_single(value_f, depth), max_size=6
            ).map(lambda d: {k: v for k, v in d.items() if v is not None})
        single = _message_strategy(f.message_type, depth)
    else:
        single = _scalar(f)
    if f.is_repeated:
        return st.lists(single, max_size=6).map(lambda xs: [x for x in xs if x is not None])
    return single


def _field_value_single(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if f.message_type is not None:
        return _message_strategy(f.message_type, depth)
    return _scalar(f)


def request_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type with a random subset of fields set to nasty values."""
    cls = GetMessageClass(descriptor)
    fields = list(descriptor.fields)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for f in fields:
            if not draw(st.booleans()):
                continue
            value = draw(_field_value(f, depth))
            if value is None:
                continue
            try:
                if f.message_type is not None and f.message_type.GetOptions().map_entry:
                    target = getattr(message, f.name)
                    for k, v in value.items():
                        if isinstance(v, Message):
                            target[k].CopyFrom(v)
                        else:
                            target[k] = v
                elif f.is_repeated:
                    target = getattr(message, f.name)
                    if f.message_type is not None:
                        for item in value:
                            target.add().CopyFrom(item)
                    else:
                        target.extend(value)
                elif f.message_type is not None:
                    getattr(message, f.name).CopyFrom(value)
                else:
                    setattr(message, f.name, value)
            except (ValueError, TypeError):
                continue  # a value the library itself refuses (e.g. surrogates in text)
        return message

    return build()


def corrupted(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` truncated, with bytes flipped, or with invalid UTF-8 spliced in."""
    return st.one_of(
        st.integers(0, max(0, len(data) - 1)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, max(0, len(data) - 1)), st.integers(0, 255)).map(
            lambda t: data[: t[0]] + bytes([t[1]]) + data[t[0] + 1 :] if data else bytes([t[1]])
        ),
        st.just(data + b"\x0a\x03\xff\xfe\xfd"),  # field 1 as a string of invalid UTF-8
        st.binary(max_size=64),
    )
