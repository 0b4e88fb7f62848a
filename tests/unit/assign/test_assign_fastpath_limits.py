"""The Assign request's limits (attributes size and depth, unit id, forced variations), enforced
identically by the compiled decoder and its reference, and the compiled steps refusing inputs of
the wrong shape. The compiled decoder leaves requests with options (fields 5 to 7) to the
reference ("deferred" below): `decode_request` must then answer what the reference answers."""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verdict.evaluation import Assignment, Reason
from verdict.v1 import assignment_pb2
from verdict_assignment.assign import fastpath
from verdict_assignment.assign.assigner import check_unit_id
from verdict_platform.errors import InvalidArgument

compiled = pytest.importorskip("verdict_assignment.assign._fastpath")

FUZZ_EXAMPLES = int(os.environ.get("VERDICT_FUZZ_EXAMPLES", "100"))
"""Examples per fuzz test: a hundred in `make test`, thousands in `make check-native`."""


def _decoders() -> list[Any]:
    return [compiled.decode_request, fastpath.decode_request_py]


def _request(attributes: dict[str, Any], unit_id: str = "u-1") -> bytes:
    request = assignment_pb2.AssignRequest(unit_id=unit_id)
    request.attributes.update(attributes)
    return request.SerializeToString()


def _attributes_of_size(size: int) -> dict[str, Any]:
    """Attributes whose Struct is exactly `size` bytes on the wire."""
    for length in range(size - 32, size):  # the overhead: a few tags and length varints
        attributes = {"k": "x" * length}
        if assignment_pb2.AssignRequest(attributes=attributes).attributes.ByteSize() == size:
            return attributes
    raise AssertionError(f"no attributes of {size} bytes")


def _nested(depth: int) -> dict[str, Any]:
    """Attributes `depth` JSON levels deep (the attributes object is level 1)."""
    value: Any = 1
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return {"a": value}


def test_limits_match_the_compiled_module() -> None:
    assert compiled.MAX_ATTRIBUTES_BYTES == fastpath.MAX_ATTRIBUTES_BYTES == 16 * 1024
    assert compiled.MAX_ATTRIBUTES_DEPTH == fastpath.MAX_ATTRIBUTES_DEPTH == 8
    assert fastpath.RequestLimitError is compiled.RequestLimitError


@pytest.mark.parametrize("decode", _decoders())
def test_attributes_at_the_byte_limit_are_decoded(decode: Any) -> None:
    attributes = _attributes_of_size(fastpath.MAX_ATTRIBUTES_BYTES)
    assert decode(_request(attributes))[1] == attributes


@pytest.mark.parametrize("decode", _decoders())
def test_attributes_over_the_byte_limit_are_refused_naming_attributes(decode: Any) -> None:
    body = _request(_attributes_of_size(fastpath.MAX_ATTRIBUTES_BYTES + 1))
    with pytest.raises(fastpath.RequestLimitError) as refused:
        decode(body)
    assert refused.value.args == ("attributes", "are 16385 bytes; at most 16384 allowed")
    assert fastpath.decode_request(body) == fastpath.RequestProblem(
        "attributes", "are 16385 bytes; at most 16384 allowed"
    )


@pytest.mark.parametrize("decode", _decoders())
def test_attributes_sent_in_pieces_count_together(decode: Any) -> None:
    """protobuf merges repeated occurrences of `attributes`: their sizes add up."""
    half = _request(_attributes_of_size(fastpath.MAX_ATTRIBUTES_BYTES // 2 + 1))
    decode(half)
    with pytest.raises(fastpath.RequestLimitError, match="attributes"):
        decode(half + half)


@pytest.mark.parametrize("decode", _decoders())
def test_attributes_at_the_depth_limit_are_decoded(decode: Any) -> None:
    attributes = _nested(fastpath.MAX_ATTRIBUTES_DEPTH)
    assert fastpath.json_depth(attributes) == 8
    assert decode(_request(attributes))[1] == attributes


@pytest.mark.parametrize("decode", _decoders())
def test_attributes_over_the_depth_limit_are_refused_naming_attributes(decode: Any) -> None:
    body = _request(_nested(fastpath.MAX_ATTRIBUTES_DEPTH + 1))
    with pytest.raises(fastpath.RequestLimitError) as refused:
        decode(body)
    assert refused.value.args == ("attributes", "nest more than 8 levels deep")
    assert fastpath.decode_request(body) == fastpath.RequestProblem(*refused.value.args)


@pytest.mark.parametrize("decode", _decoders())
def test_depth_counts_what_the_request_decodes_to(decode: Any) -> None:
    """A deep value replaced by a later occurrence of its key (last one wins) is not there."""
    deep = _request(_nested(fastpath.MAX_ATTRIBUTES_DEPTH + 3))
    flat = _request({"a": "flat"})
    assert decode(deep + flat)[1] == {"a": "flat"}


def test_a_malformed_request_over_the_limits_is_refused_as_malformed() -> None:
    body = _request(_nested(fastpath.MAX_ATTRIBUTES_DEPTH + 1)) + b"\x0a\x05ab"  # truncated
    assert fastpath.decode_request(body) == fastpath.MALFORMED


@pytest.mark.parametrize("unit_id", ["u\x00", "\x00", "a\x00b"])
def test_unit_ids_with_nul_are_refused(unit_id: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_unit_id(unit_id)
    assert [v.field for v in refused.value.violations] == ["unit_id"]


@pytest.mark.parametrize(
    ("forced", "min_version", "field"),
    [
        ({f"e{i}": "a" for i in range(101)}, 0, "forced_variations"),
        ({"e" * 257: "a"}, 0, "forced_variations"),
        ({"e": "é" * 129}, 0, "forced_variations"),
        ({}, -1, "min_config_version"),
    ],
    ids=["101 entries", "long key", "long value", "negative version"],
)
def test_options_over_their_limits_are_refused_naming_the_field(
    forced: dict[str, str], min_version: int, field: str
) -> None:
    body = assignment_pb2.AssignRequest(
        unit_id="u", forced_variations=forced, min_config_version=min_version
    ).SerializeToString()
    problem = fastpath.decode_request(body)
    assert isinstance(problem, fastpath.RequestProblem) and problem.field == field


def test_options_at_their_limits_are_accepted() -> None:
    forced = {f"{i:0>256}": "v" * 256 for i in range(100)}
    body = assignment_pb2.AssignRequest(unit_id="u", forced_variations=forced).SerializeToString()
    decoded = fastpath.decode_request(body)
    assert isinstance(decoded, tuple) and decoded[4] is not None
    assert decoded[4].forced == forced


def test_unit_id_limits_still_hold() -> None:
    check_unit_id("u" * 256)
    for bad in ("", "u" * 257, "é" * 129):
        with pytest.raises(InvalidArgument):
            check_unit_id(bad)


# Random and corrupted requests: hypothesis explores sizes and nestings the seeded tests do not.
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
)
fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@fuzz
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.text(max_size=20))
def test_fuzz_decoders_agree_on_valid_requests(attributes: dict[str, Any], unit: str) -> None:
    body = _request(attributes, unit)
    assert _outcome(compiled.decode_request, body) == _outcome(fastpath.decode_request_py, body)


@fuzz
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=6),
    st.dictionaries(st.text(max_size=300), st.text(max_size=300), max_size=3),
    st.booleans(),
    st.integers(-5, 2**63 - 1),
)
def test_fuzz_requests_with_options_are_answered_as_the_reference_does(
    attributes: dict[str, Any], forced: dict[str, str], explain: bool, min_version: int
) -> None:
    request = assignment_pb2.AssignRequest(
        unit_id="u", forced_variations=forced, explain=explain, min_config_version=min_version
    )
    request.attributes.update(attributes)
    body = request.SerializeToString()
    expected = _outcome(fastpath.decode_request_py, body)
    actual = _outcome(compiled.decode_request, body)
    assert actual == ("deferred" if forced or explain or min_version else expected)
    _decoded_as_the_reference(body, expected)


@fuzz
@given(st.binary(max_size=200))
def test_fuzz_decoders_never_crash_on_random_bytes(body: bytes) -> None:
    expected = _outcome(fastpath.decode_request_py, body)
    actual = _outcome(compiled.decode_request, body)
    if expected is not ValueError:  # what protobuf decodes, the compiled decoder decodes alike
        assert actual in (expected, "deferred")
    assert isinstance(fastpath.decode_request(body), tuple | fastpath.RequestProblem)
    _decoded_as_the_reference(body, expected)


@fuzz
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=6),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10**6),
)
def test_fuzz_decoders_agree_on_corrupted_requests(
    attributes: dict[str, Any], flips: list[tuple[int, int]], cut: int
) -> None:
    body = bytearray(_request(attributes))
    for at, byte in flips:
        body[at % len(body)] = byte
    body = body[: cut % (len(body) + 1)]
    expected = _outcome(fastpath.decode_request_py, bytes(body))
    actual = _outcome(compiled.decode_request, bytes(body))
    if expected is not ValueError:
        assert actual in (expected, "deferred")
    _decoded_as_the_reference(bytes(body), expected)


def _outcome(decode: Any, body: bytes) -> Any:
    try:
        return decode(body)
    except fastpath.RequestLimitError as error:
        return ("limit", error.args)
    except ValueError as error:
        return "deferred" if "options: left to the reference" in str(error) else ValueError


def _decoded_as_the_reference(body: bytes, expected: Any) -> None:
    """`decode_request`'s answer is the reference's `expected` (`_outcome`), as an answer."""
    decoded = fastpath.decode_request(body)
    if expected is ValueError:
        assert decoded == fastpath.MALFORMED
    elif isinstance(expected, tuple) and expected[0] == "limit":
        assert decoded == fastpath.RequestProblem(*expected[1])
    else:
        assert decoded == expected


# The compiled join and exposure check refuse inputs of the wrong shape, as the references do.
IN, OUT = fastpath.IN_EXPERIMENT_REASONS, fastpath.OUT_OF_EXPERIMENT_REASONS
RESULT = Assignment("e", "a", 0, Reason.ASSIGNED, None, None, True)
ENCODERS = [compiled.encode, fastpath.encode_py]


@pytest.mark.parametrize("encode", ENCODERS)
def test_encode_refuses_a_table_that_is_no_tuple(encode: Any) -> None:
    with pytest.raises(TypeError):
        encode([RESULT], {"e": [b"x"] * 20}, IN, OUT, b"")


@pytest.mark.parametrize("encode", ENCODERS)
def test_encode_refuses_empty_in_reasons(encode: Any) -> None:
    with pytest.raises(ValueError, match="in_reasons"):
        encode([RESULT], {"e": (b"x",) * 20}, (), OUT, b"")


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize("size", [0, 1, len(OUT) - 1])
def test_encode_refuses_a_table_too_small(encode: Any, size: int) -> None:
    out_result = RESULT._replace(reason=Reason.NOT_RUNNING, variant_key=None, variant_index=-1)
    with pytest.raises(ValueError, match="smaller"):
        encode([out_result], {"e": (b"x",) * size}, IN, OUT, b"")


@pytest.mark.parametrize("encode", ENCODERS)
def test_encode_answers_none_for_an_entry_that_is_no_bytes(encode: Any) -> None:
    table = ("not bytes",) * (len(IN) + len(OUT))
    assert encode([RESULT], {"e": table}, IN, OUT, b"") is None


def test_encode_with_one_variant_and_every_reason_stays_in_bounds() -> None:
    table = tuple(bytes([i]) for i in range(len(IN) + len(OUT)))
    for reason in Reason:
        if reason in IN:
            result = RESULT._replace(reason=reason)
        else:
            result = RESULT._replace(reason=reason, variant_key=None, variant_index=-1)
        args = ([result], {"e": table}, IN, OUT, b"!")
        assert compiled.encode(*args) == fastpath.encode_py(*args)


class _Mutating(str):
    """A key whose comparison runs `hook`: Python code running while C holds references into
    the dicts the hook empties (the sanitizer build reports any use after free)."""

    hook: Callable[[], None] = staticmethod(lambda: None)

    def __eq__(self, other: object) -> bool:
        type(self).hook()
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _empty(mapping: dict[str, Any]) -> Callable[[], None]:
    def hook() -> None:
        for value in list(mapping.values()):
            if isinstance(value, dict):
                value.clear()
        mapping.clear()  # drops the last references to the inner dicts and their values

    return hook


def test_unrecorded_survives_dicts_changed_while_it_reads_them() -> None:
    recent: dict[str, Any] = {"u": {"e": "".join(["b", "x"]), "f": "".join(["c", "x"])}}
    _Mutating.hook = staticmethod(_empty(recent))
    results = [
        RESULT._replace(variant_key=_Mutating("a")),
        RESULT._replace(experiment_key="f", variant_key="a"),
    ]
    assert compiled.unrecorded(results, "u", recent, (Reason.ASSIGNED,)) == results


def test_encode_survives_tables_changed_while_it_reads_them() -> None:
    table_e = tuple(bytes([i]) * 3 for i in range(20))
    table_f = tuple(bytes([100 + i]) * 2 for i in range(20))
    expected = fastpath.encode_py(
        [RESULT, RESULT._replace(experiment_key="f")], {"e": table_e, "f": table_f}, IN, OUT, b""
    )
    tables: dict[str, Any] = {"e": table_e, _Mutating("f"): table_f}
    del table_e  # the dict holds the last reference: dropping "e" frees its entries

    def drop_e() -> None:
        tables.pop("e", None)

    _Mutating.hook = staticmethod(drop_e)
    results = [RESULT, RESULT._replace(experiment_key="f")]  # "e" is read before "f" drops it
    assert compiled.encode(results, tables, IN, OUT, b"") == expected
    assert "e" not in tables


def test_layout_check_refuses_a_module_built_for_other_fields() -> None:
    fastpath.check_layout(compiled)
    drifted = types.SimpleNamespace(
        ASSIGNMENT_FIELDS=("experiment_key", "variant_index", "variant_key", "reason"),
        MAX_ATTRIBUTES_BYTES=fastpath.MAX_ATTRIBUTES_BYTES,
        MAX_ATTRIBUTES_DEPTH=fastpath.MAX_ATTRIBUTES_DEPTH,
    )
    with pytest.raises(RuntimeError, match="reads Assignment"):
        fastpath.check_layout(drifted)
    other_limits = types.SimpleNamespace(
        ASSIGNMENT_FIELDS=compiled.ASSIGNMENT_FIELDS, MAX_ATTRIBUTES_BYTES=1, MAX_ATTRIBUTES_DEPTH=8
    )
    with pytest.raises(RuntimeError, match="limits"):
        fastpath.check_layout(other_limits)
