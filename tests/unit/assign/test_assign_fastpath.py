"""The compiled Assign steps (`_fastpath.c`) answer exactly what their Python references answer,
on valid requests, on protobuf's merge rules, and on malformed bytes; requests with options
(forced_variations, explain, min_config_version) are left by the compiled decoder to the
reference, and `decode_request` answers them as the reference does."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import pytest
from google.protobuf import json_format

from verdict.evaluation import Assignment, Reason
from verdict.v1 import assignment_pb2, experiment_pb2
from verdict_assignment.assign import fastpath
from verdict_assignment.assign.snapshot import build_snapshot, snapshot_proto

compiled = pytest.importorskip("verdict_assignment.assign._fastpath")


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "null", "big"]
    if depth < 3:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(["", "FR", "ünïcödé", "a" * 300, "2.4.1", "😀"])
    if kind == "int":
        return rng.randint(-(2**40), 2**40)
    if kind == "float":
        return rng.choice([0.5, -0.0, 1e300, -2.25, math.inf, 2.0**53, 2.0**53 + 2])
    if kind == "big":
        return float(rng.choice([2**53 - 1, -(2**53) + 1, 2**60]))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _random_request(rng: random.Random, options: float = 0.0) -> bytes:
    """A random request; with probability `options`, with some of fields 5 to 7 set."""
    request = assignment_pb2.AssignRequest(
        unit_id=rng.choice(["", "user-1", "ünit", "u" * 100]),
        experiment_keys=[f"exp-{i}" for i in range(rng.randint(0, 3))],
        skip_exposure_logging=rng.random() < 0.5,
    )
    request.attributes.update({f"a{i}": _random_value(rng) for i in range(rng.randint(0, 6))})
    if rng.random() < options:
        request.forced_variations.update(
            {f"exp-{i}": rng.choice(["a", "b", "ü"]) for i in range(rng.randint(0, 3))}
        )
        request.explain = rng.random() < 0.5
        request.min_config_version = rng.choice([0, 0, 1, 7, 2**40])
    return request.SerializeToString()


def _comparable(value: Any) -> Any:
    """`value` with NaN replaced by a marker (NaN != NaN) and types made explicit."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, fastpath.AssignOptions):
        return ("options", dict(value.forced), value.explain, value.min_config_version)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_comparable(v) for v in value])
    return (type(value).__name__, value)


def _outcome(decode: Any, body: bytes) -> Any:
    """What `decode` makes of `body`: the values, a limit's (field, description), or ValueError."""
    try:
        return _comparable(decode(body))
    except fastpath.RequestLimitError as error:
        return ("limit", error.args)
    except ValueError:
        return ValueError


def _has_options(body: bytes) -> bool:
    try:
        request = assignment_pb2.AssignRequest.FromString(body)
    except Exception:
        return False
    return bool(request.forced_variations or request.explain or request.min_config_version)


def _same(body: bytes) -> None:
    """The compiled decoder answers as the reference, except that it leaves requests with
    options to the reference; `decode_request` answers every request as the reference."""
    reference = _outcome(fastpath.decode_request_py, body)
    if _has_options(body):
        assert _outcome(compiled.decode_request, body) is ValueError
        assert reference is ValueError or reference[0] == "limit" or reference[1][4][0] == "options"
    else:
        assert _outcome(compiled.decode_request, body) == reference
    combined = fastpath.decode_request(body)
    if isinstance(combined, fastpath.RequestProblem):
        assert reference is ValueError or reference[0] == "limit"
    else:
        assert _comparable(combined) == reference


def test_fastpath_is_compiled() -> None:
    assert fastpath.COMPILED, "run `make setup`: scripts/build_native.py builds it"
    assert fastpath.encode is compiled.encode


def test_fastpath_decode_equals_the_generated_parser() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        _same(_random_request(rng, options=0.3))


def test_fastpath_decode_returns_options_only_when_set() -> None:
    plain = assignment_pb2.AssignRequest(unit_id="u", experiment_keys=["e"])
    assert compiled.decode_request(plain.SerializeToString()) == ("u", {}, ("e",), False, None)
    with_options = assignment_pb2.AssignRequest(
        unit_id="u", forced_variations={"e": "b"}, explain=True, min_config_version=12
    )
    body = with_options.SerializeToString()
    with pytest.raises(ValueError):
        compiled.decode_request(body)  # left to the reference
    assert fastpath.decode_request(body) == (
        "u",
        {},
        (),
        False,
        fastpath.AssignOptions({"e": "b"}, True, 12),
    )
    # Present on the wire with default values: no options, as protobuf reads them.
    explicit_defaults = plain.SerializeToString() + b"\x30\x00\x38\x00"
    assert fastpath.decode_request(explicit_defaults) == ("u", {}, ("e",), False, None)


def test_fastpath_decode_follows_protobufs_merge_rules() -> None:
    rng = random.Random(8)
    for _ in range(500):
        first, second = _random_request(rng, 0.3), _random_request(rng, 0.3)
        _same(first + second)  # concatenated messages merge: maps and lists too
    entry = assignment_pb2.AssignRequest()
    entry.attributes.update({"x": {"a": 1}})
    more = assignment_pb2.AssignRequest()
    more.attributes.update({"x": {"b": 2}, "y": [1]})
    _same(entry.SerializeToString() + more.SerializeToString())
    unit, attributes, keys, skip, options = compiled.decode_request(
        entry.SerializeToString() + more.SerializeToString()
    )
    assert attributes == {"x": {"b": 2}, "y": [1]}  # a repeated map key: the last entry wins
    assert (unit, keys, skip, options) == ("", (), False, None)
    forced = [
        assignment_pb2.AssignRequest(forced_variations={"e": v}).SerializeToString()
        for v in ("a", "b")
    ]
    decoded = fastpath.decode_request(forced[0] + forced[1])
    assert not isinstance(decoded, fastpath.RequestProblem)
    assert decoded[4] == fastpath.AssignOptions({"e": "b"}, False, 0)  # last map entry wins


def test_fastpath_decode_skips_unknown_fields() -> None:
    body = assignment_pb2.AssignRequest(unit_id="u").SerializeToString()
    unknown = bytes([0x48, 0x05, 0x51]) + bytes(8) + bytes([0x5A, 0x01, 0x78, 0x65]) + bytes(4)
    _same(body + unknown)
    assert compiled.decode_request(body + unknown)[0] == "u"


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x05ab",  # truncated string
        b"\x0a\x02\xff\xfe",  # unit id not UTF-8
        b"\x08",  # truncated varint
        b"\x0b\x00",  # group start: not supported in proto3 messages
        b"\x00\x01",  # field number 0
        b"\x12\x04\x0a\x02\x0a\x09",  # attribute entry with a truncated key
    ],
    ids=repr,
)
def test_fastpath_decode_refuses_malformed_bytes(body: bytes) -> None:
    with pytest.raises(ValueError, match="malformed AssignRequest"):
        compiled.decode_request(body)
    with pytest.raises(ValueError, match="malformed AssignRequest"):
        fastpath.decode_request_py(body)
    assert fastpath.decode_request(body) == fastpath.MALFORMED  # answered INVALID_ARGUMENT


def test_fastpath_decode_agrees_on_corrupted_bytes() -> None:
    """Random byte flips and cuts of valid requests: whatever protobuf decodes, the hot path's
    decoder decodes the same; nothing crashes."""
    rng = random.Random(9)
    refused = accepted = 0
    for _ in range(20000):
        body = bytearray(_random_request(rng, options=0.2))
        if not body:
            continue
        for _ in range(rng.randint(1, 3)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(body) + 1)]
        try:
            expected = _comparable(fastpath.decode_request_py(bytes(body)))
        except ValueError:
            refused += 1
            with contextlib.suppress(ValueError):
                compiled.decode_request(bytes(body))  # may be lenient; must not crash
            continue
        accepted += 1
        assert _comparable(fastpath.decode_request(bytes(body))) == expected, bytes(body)
    assert refused > 1000 and accepted > 1000  # both paths are exercised


def test_fastpath_decode_defers_to_protobuf_on_what_it_refuses() -> None:
    # An unknown group whose content has field number 0: the compiled decoder refuses the
    # field number, protobuf skips the group whole.
    body = b"\x73\x05\x49\xbc\xd2\x69\x74\x20\x01"
    with pytest.raises(ValueError):
        compiled.decode_request(body)
    assert fastpath.decode_request(body) == fastpath.decode_request_py(body)
    assert fastpath.decode_request(body) == ("", {}, (), True, None)


def _experiment(key: str) -> experiment_pb2.Experiment:
    spec = {
        "key": key,
        "status": "EXPERIMENT_STATUS_RUNNING",
        "coverage": 0.7,
        "variants": [
            {"key": "a", "weight": 0.3, "isControl": True, "payload": {"model": "x"}},
            {"key": "b", "weight": 0.3, "payload": {"model": "y"}},
            {"key": "c", "weight": 0.4, "payload": {"model": "z"}},
        ],
        "forcedVariations": {"qa": "c"},
    }
    return json_format.ParseDict(spec, experiment_pb2.Experiment())


def test_fastpath_encode_equals_the_reference() -> None:
    snapshot = build_snapshot(snapshot_proto(9, [_experiment("one"), _experiment("two")]))
    args = (fastpath.IN_EXPERIMENT_REASONS, fastpath.OUT_OF_EXPERIMENT_REASONS, b"\x10\x09")
    for unit in ["qa", *(f"u{i}" for i in range(200))]:
        results = snapshot.evaluator.assign(unit, {}, ["one", "two"])
        fast = compiled.encode(results, snapshot.tables, *args)
        assert fast is not None
        assert fast == fastpath.encode_py(results, snapshot.tables, *args)
        assert fast == snapshot._encode_slowly(results)
    sticky = [Assignment("one", "b", 1, Reason.STICKY, None, 0.5, True)]
    assert compiled.encode(sticky, snapshot.tables, *args) == fastpath.encode_py(
        sticky, snapshot.tables, *args
    )
    unknown = snapshot.evaluator.assign("u", {}, ["one", "nope"])
    assert compiled.encode(unknown, snapshot.tables, *args) is None
    assert fastpath.encode_py(unknown, snapshot.tables, *args) is None
    out_of_range = [Assignment("one", "z", 7, Reason.ASSIGNED, None, 0.5, True)]
    assert compiled.encode(out_of_range, snapshot.tables, *args) is None
    assert fastpath.encode_py(out_of_range, snapshot.tables, *args) is None


def test_fastpath_counts_each_results_reason_like_the_reference() -> None:
    snapshot = build_snapshot(snapshot_proto(9, [_experiment("one"), _experiment("two")]))
    args = (fastpath.IN_EXPERIMENT_REASONS, fastpath.OUT_OF_EXPERIMENT_REASONS, b"\x10\x09")
    fast, reference, slow = (fastpath.decision_counters() for _ in range(3))
    expected: dict[Reason, int] = {}
    sticky = [Assignment("one", "b", 1, Reason.STICKY, None, 0.5, True)]
    batches = [
        snapshot.evaluator.assign(u, {}, ["one", "two"]) for u in ["qa", *map(str, range(300))]
    ]
    for results in [*batches, sticky]:
        assert compiled.encode(results, snapshot.tables, *args, fast) is not None
        assert fastpath.encode_py(results, snapshot.tables, *args, reference) is not None
        snapshot._encode_slowly(results, slow)
        for r in results:
            expected[r.reason] = expected.get(r.reason, 0) + 1
    by_reason = dict(zip(fastpath.COUNTED_REASONS, fast, strict=True))
    assert {r: n for r, n in by_reason.items() if n} == expected
    assert len(expected) >= 4  # forced, assigned, not in traffic, sticky at least
    assert list(fast) == list(reference) == list(slow)
    unknown = snapshot.evaluator.assign("u", {}, ["one", "nope"])
    before = list(fast)
    assert compiled.encode(unknown, snapshot.tables, *args, fast) is None
    assert list(fast) == before  # a join that falls back counts nothing: the slow path will
    with pytest.raises(ValueError, match="fewer counters"):
        compiled.encode(sticky, snapshot.tables, *args, bytearray(8))


def test_fastpath_unrecorded_equals_the_reference() -> None:
    snapshot = build_snapshot(snapshot_proto(9, [_experiment("one"), _experiment("two")]))
    exposed = (Reason.ASSIGNED, Reason.STICKY)
    rng = random.Random(10)
    recent: dict[str, dict[str, str]] = {}
    for i in range(300):
        unit = f"u{rng.randrange(50)}" if i % 7 else "qa"
        results = snapshot.evaluator.assign(unit, {})
        if i % 11 == 0 and unit in recent:  # a variant recorded before, now another
            recent[unit] = {key: "other" for key in recent[unit]}
        fast = compiled.unrecorded(results, unit, recent, exposed)
        assert fast == fastpath.unrecorded_py(results, unit, recent, exposed)
        for r in fast:
            assert r.reason in exposed and r.variant_key is not None
            recent.setdefault(unit, {})[r.experiment_key] = r.variant_key
    assert recent and "qa" not in recent  # forced units: no exposure
