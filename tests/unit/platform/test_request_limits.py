"""The request limits (verdict.limits): what the door refuses, with the path of the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import json_format, struct_pb2

from verdict.limits import (
    DEFAULT_ITEMS,
    DEFAULT_STRING_BYTES,
    FIELD_LIMITS,
    MAX_JSON_DEPTH,
    FieldLimit,
    RequestLimits,
    unit_id_problem,
)
from verdict.v1 import analysis_pb2, experiment_pb2

LIMITS = RequestLimits()
PROTOS = Path(__file__).resolve().parents[3] / "protos" / "verdict" / "v1"


def _create(**fields: object) -> experiment_pb2.CreateExperimentRequest:
    return experiment_pb2.CreateExperimentRequest(
        experiment=json_format.ParseDict({"key": "exp", **fields}, experiment_pb2.Experiment())
    )


def _fields(request: object) -> list[str]:
    return [v.field for v in LIMITS.problems(request)]  # type: ignore[arg-type]


def test_a_valid_request_has_no_problem() -> None:
    request = _create(
        name="Cheaper model",
        description="d" * 10_000,
        variants=[{"key": "c", "payload": {"model": "m", "params": {"t": 0.2}}}],
        targeting={"country": {"$in": ["FR", "DE"]}},
    )
    assert LIMITS.problems(request) == []


def test_a_ten_megabyte_description_is_refused() -> None:
    assert _fields(_create(description="x" * 10_000_000)) == ["experiment.description"]


def test_multibyte_text_is_measured_in_bytes() -> None:
    assert _fields(_create(name="é" * 128)) == []  # 256 bytes
    assert _fields(_create(name="é" * 129)) == ["experiment.name"]


def test_a_nul_in_any_string_is_refused() -> None:
    assert _fields(_create(name="a\x00b")) == ["experiment.name"]
    request = experiment_pb2.StopExperimentRequest(key="k", reason="why\x00")
    assert _fields(request) == ["reason"]


def test_a_nul_inside_json_is_refused_with_its_path() -> None:
    request = _create(variants=[{"key": "c", "payload": {"p": {"q": ["ok", "no\x00"]}}}])
    assert _fields(request) == ["experiment.variants[0].payload.p.q[1]"]
    keyed = _create(targeting={"a\x00": 1})
    assert _fields(keyed) == ["experiment.targeting"]


def test_json_nested_deeper_than_the_limit_is_refused() -> None:
    condition: dict[str, object] = {"x": 1}
    for _ in range(MAX_JSON_DEPTH):
        condition = {"$and": [condition]}
    [violation] = LIMITS.problems(_create(targeting=condition))
    assert violation.field.startswith("experiment.targeting.$and[0]")
    assert "deeper" in violation.description


def test_json_within_the_depth_limit_passes() -> None:
    condition: dict[str, object] = {"x": 1}
    for _ in range(MAX_JSON_DEPTH // 2 - 1):
        condition = {"$and": [condition]}
    assert _fields(_create(targeting=condition)) == []


def test_non_finite_numbers_cannot_enter_json() -> None:
    payload = struct_pb2.Struct()
    payload.update({"t": float("nan")})
    request = experiment_pb2.CreateExperimentRequest(
        experiment=experiment_pb2.Experiment(
            key="e", variants=[experiment_pb2.Variant(key="c", payload=payload)]
        )
    )
    assert _fields(request) == ["experiment.variants[0].payload.t"]


def test_too_many_entries_in_a_list_or_map_are_refused() -> None:
    request = _create(variants=[{"key": f"v{i}"} for i in range(21)])
    assert _fields(request) == ["experiment.variants"]
    forced = _create(forcedVariations={f"u{i}": "c" for i in range(1001)})
    assert _fields(forced) == ["experiment.forced_variations"]


def test_a_map_key_over_its_limit_names_the_entry() -> None:
    forced = _create(forcedVariations={"u" * 300: "c"})
    [violation] = LIMITS.problems(forced)
    assert violation.field.startswith("experiment.forced_variations[")


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(0, 1_000_000_000), (0, -1), (253_402_300_800, 0), (-62_135_596_801, 0)]
)
def test_timestamps_out_of_range_are_refused(seconds: int, nanos: int) -> None:
    request = _create()
    request.experiment.schedule.start_time.seconds = seconds
    request.experiment.schedule.start_time.nanos = nanos
    assert _fields(request) == ["experiment.schedule.start_time"]


def test_durations_with_mixed_signs_are_refused() -> None:
    request = _create()
    request.experiment.stopping_rules.max_duration.seconds = 5
    request.experiment.stopping_rules.max_duration.nanos = -1
    assert _fields(request) == ["experiment.stopping_rules.max_duration"]


def test_an_operator_may_raise_one_limit() -> None:
    big = _create(variants=[{"key": "c", "payload": {"prompt": "p" * 100_000}}])
    assert _fields(big) == ["experiment.variants[0].payload"]
    wider = LIMITS.with_field("verdict.v1.Variant.payload", FieldLimit(max_bytes=200_000))
    assert wider.problems(big) == []


def test_analysis_requests_are_checked_too() -> None:
    request = analysis_pb2.GetResultsRequest(experiment_key="k" * 300)
    assert _fields(request) == ["experiment_key"]


def test_unit_ids() -> None:
    assert unit_id_problem("") and unit_id_problem("a\x00") and unit_id_problem("é" * 129)
    assert unit_id_problem("u" * 256) is None


def _comment_of(field_full_name: str) -> str:
    """The comment lines just above a field's declaration in the protos."""
    message, field = field_full_name.removeprefix("verdict.v1.").rsplit(".", 1)
    for proto in PROTOS.glob("*.proto"):
        text = proto.read_text()
        body = re.search(rf"\nmessage {message} \{{(.*?)\n\}}", text, re.S)
        if body is None:
            continue
        lines = body.group(1).splitlines()
        for i, line in enumerate(lines):
            if re.match(rf"\s+(repeated |map<[^>]+> )?[\w.<>, ]*\b{field} = \d+;", line):
                comment = []
                for above in reversed(lines[:i]):
                    if not above.strip().startswith("//"):
                        break
                    comment.insert(0, above.strip().removeprefix("//").strip())
                return " ".join(comment)
    raise AssertionError(f"{field_full_name} not found in the protos")


def _stated(limit: FieldLimit) -> list[str]:
    def human(n: int) -> str:
        if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
            return f"{n // (1024 * 1024)} MiB"
        return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n:,}"

    out = []
    if limit.max_bytes is not None:
        out.append(human(limit.max_bytes))
    if limit.max_items is not None:
        out.append(f"{limit.max_items:,}")
    return out


@pytest.mark.parametrize("name", sorted(FIELD_LIMITS))
def test_each_special_limit_is_stated_in_its_proto_comment(name: str) -> None:
    comment = _comment_of(name)
    for figure in _stated(FIELD_LIMITS[name]):
        assert figure in comment, f"{name}: the comment should state {figure!r}: {comment!r}"


def test_the_defaults_are_stated_in_every_proto_file() -> None:
    for proto in PROTOS.glob("*.proto"):
        text = proto.read_text()
        if "service " not in text:
            continue
        assert f"at most {DEFAULT_STRING_BYTES} bytes" in text, proto.name
        assert f"at most {DEFAULT_ITEMS} entries" in text, proto.name
