"""The validation table: each rule, with the field and reason it reports."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest

from verdict_ingest.encoding import EventEncoder, properties_json
from verdict_ingest.validation import (
    BatchLimits,
    TimeWindow,
    check_batch,
    check_exposures,
    event_problem,
)
from verdict_platform.errors import InvalidArgument

NOW = 1_800_000_000.0
WINDOW = TimeWindow(past_s=7 * 86_400, future_s=300)


@dataclass
class Ts:
    seconds: int = int(NOW)
    nanos: int = 123_456_789


@dataclass
class Ev:
    event_id: str = "0b6e4f5c-8a2b-4d3e-9f10-112233445566"
    unit_id: str = "user-1"
    name: str = "llm.call"
    timestamp: Ts = field(default_factory=Ts)
    measures: dict[str, float] = field(default_factory=lambda: {"latency_ms": 12.5})
    properties: dict[str, str] = field(default_factory=lambda: {"gen_ai.request.model": "m"})


@dataclass
class Ex:
    experiment_key: str = "new-prompt"
    variant_key: str = "control"
    unit_id: str = "user-1"
    timestamp: Ts = field(default_factory=Ts)
    allocation_version: int = 1
    segments: dict[str, str] = field(default_factory=lambda: {"country": "fr"})
    hash_attribute: str = ""
    hash_value: str = ""


CASES = [
    ("valid", Ev(), None),
    ("uppercase uuid", Ev(event_id="0B6E4F5C-8A2B-4D3E-9F10-112233445566"), None),
    ("uuid without dashes", Ev(event_id="0b6e4f5c8a2b4d3e9f10112233445566"), "event_id"),
    ("empty id", Ev(event_id=""), "event_id"),
    ("empty unit", Ev(unit_id=""), "unit_id"),
    ("unit of 256 bytes", Ev(unit_id="é" * 128), None),
    ("unit of 257 bytes", Ev(unit_id="a" * 257), "unit_id"),
    ("unit of 258 bytes in 129 chars", Ev(unit_id="é" * 129), "unit_id"),
    ("unit with NUL", Ev(unit_id="a\x00b"), "unit_id"),
    ("name with uppercase", Ev(name="LLM.call"), "name"),
    ("name starting with digit", Ev(name="1call"), "name"),
    ("name of 128 chars", Ev(name="a" * 128), None),
    ("name of 129 chars", Ev(name="a" * 129), "name"),
    ("feedback name", Ev(name="feedback.thumbs_up"), None),
    ("missing timestamp", Ev(timestamp=Ts(0, 0)), "timestamp"),
    ("8 days old", Ev(timestamp=Ts(int(NOW) - 8 * 86_400)), "timestamp"),
    ("6 days old", Ev(timestamp=Ts(int(NOW) - 6 * 86_400)), None),
    ("4 minutes ahead", Ev(timestamp=Ts(int(NOW) + 240)), None),
    ("6 minutes ahead", Ev(timestamp=Ts(int(NOW) + 360)), "timestamp"),
    ("nanos of a whole second", Ev(timestamp=Ts(int(NOW), 1_000_000_000)), "timestamp"),
    ("negative nanos", Ev(timestamp=Ts(int(NOW), -1)), "timestamp"),
    ("NaN measure", Ev(measures={"a": 1.0, "cost_usd": math.nan}), "measures[cost_usd]"),
    ("infinite measure", Ev(measures={"latency_ms": math.inf}), "measures[latency_ms]"),
    ("huge finite measures", Ev(measures={"a": 1e308, "b": 1e308}), None),
    ("no measures", Ev(measures={}), None),
    ("65 measures", Ev(measures={f"m{i}": 1.0 for i in range(65)}), "measures"),
    ("bad measure name", Ev(measures={"ok": 1.0, "bad name": 1.0}), "measures[bad name]"),
    ("65 properties", Ev(properties={f"p{i}": "v" for i in range(65)}), "properties"),
    ("bad property key", Ev(properties={"_x": "v"}), "properties[_x]"),
    ("value of 1024 bytes", Ev(properties={"k": "é" * 512}), None),
    ("value of 1025 bytes", Ev(properties={"k": "a" * 1025}), "properties[k]"),
    ("value with NUL", Ev(properties={"k": "a\x00"}), "properties[k]"),
]


@pytest.mark.parametrize(("case", "event", "field_name"), CASES, ids=[c[0] for c in CASES])
def test_event_validation_table(case: str, event: Ev, field_name: str | None) -> None:
    # The rules (event_problem) and the service's fast path (EventEncoder) must agree.
    problem = event_problem(event, NOW, WINDOW)
    encoded = EventEncoder(WINDOW).encode([event], NOW)
    if field_name is None:
        assert problem is None
        assert encoded.count == 1 and not encoded.rejections
    else:
        assert problem is not None and problem[0] == field_name and problem[1]
        assert encoded.count == 0
        (rejection,) = encoded.rejections
        assert (rejection.index, rejection.field, rejection.reason) == (0, *problem)


def test_the_encoder_caches_do_not_let_invalid_events_through() -> None:
    encoder = EventEncoder(WINDOW)
    assert encoder.encode([Ev(), Ev()], NOW).count == 2  # names now cached
    bad = encoder.encode([Ev(measures={"latency_ms": math.nan}), Ev(name="Bad")], NOW)
    assert [r.field for r in bad.rejections] == ["measures[latency_ms]", "name"]


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {"a": 'quote " and \\ backslash', "b": "line\nbreak\ttab", "c": "é€😀"},
        {"a": "\\u0000 is text here", "b": "\x01"},
        {"long": "x" * 1000},
    ],
)
def test_properties_are_copied_as_the_same_json_object(properties: dict[str, str]) -> None:
    text = properties_json(properties)
    assert json.loads(text) == properties
    encoded = EventEncoder(WINDOW).encode([Ev(properties=properties)], NOW)
    assert encoded.count == 1
    assert b"\x01" + text.encode() in encoded.data


def test_rejections_keep_the_index_of_each_bad_event() -> None:
    encoded = EventEncoder(WINDOW).encode([Ev(), Ev(event_id="x"), Ev(), Ev(unit_id="")], NOW)
    assert encoded.count == 2
    assert [(r.index, r.field) for r in encoded.rejections] == [(1, "event_id"), (3, "unit_id")]
    assert encoded.first_us == encoded.last_us == int(NOW) * 1_000_000 + 123_456


EXPOSURE_CASES = [
    ("valid", Ex(), None),
    ("key with uppercase", Ex(experiment_key="NewPrompt"), "experiment_key"),
    ("empty variant", Ex(variant_key=""), "variant_key"),
    ("long unit", Ex(unit_id="a" * 257), "unit_id"),
    ("old", Ex(timestamp=Ts(int(NOW) - 30 * 86_400)), "timestamp"),
    ("negative version", Ex(allocation_version=-1), "allocation_version"),
    ("bad segment key", Ex(segments={"a b": "x"}), "segments[a b]"),
    ("hashed on another attribute", Ex(hash_attribute="company_id", hash_value="acme"), None),
    ("hashed on the unit id, by name", Ex(hash_attribute="id", hash_value="user-1"), None),
    ("hash value of 256 bytes", Ex(hash_attribute="company_id", hash_value="é" * 128), None),
    (
        "hash value of 257 bytes",
        Ex(hash_attribute="company_id", hash_value="a" * 257),
        "hash_value",
    ),
    ("hash value with NUL", Ex(hash_attribute="company_id", hash_value="a\x00b"), "hash_value"),
    ("hash attribute of 257 bytes", Ex(hash_attribute="a" * 257, hash_value="x"), "hash_attribute"),
    ("hash attribute with NUL", Ex(hash_attribute="c\x00", hash_value="x"), "hash_attribute"),
    ("attribute without value", Ex(hash_attribute="company_id"), "hash_value"),
    ("value without attribute", Ex(hash_value="acme"), "hash_attribute"),
    ("id that is not the unit", Ex(hash_attribute="id", hash_value="user-2"), "hash_value"),
]


@pytest.mark.parametrize(
    ("case", "exposure", "field_name"), EXPOSURE_CASES, ids=[c[0] for c in EXPOSURE_CASES]
)
def test_exposure_validation_table(case: str, exposure: Ex, field_name: str | None) -> None:
    checked = check_exposures([exposure], NOW, WINDOW)
    if field_name is None:
        (row,) = checked.rows
        assert row.segments == {"country": "fr"}
        assert (row.hash_attribute, row.hash_value) == (
            exposure.hash_attribute,
            exposure.hash_value,
        )
    else:
        assert [r.field for r in checked.rejections] == [field_name]


@pytest.mark.parametrize(
    ("batch_id", "count", "size", "fields"),
    [
        ("r", 1, 10, []),
        ("", 1, 10, ["request_id"]),
        ("r", 0, 10, ["events"]),
        ("r", 11, 10, ["events"]),
        ("r", 1, 2048, ["events"]),
        ("x" * 129, 1, 10, ["request_id"]),
    ],
)
def test_malformed_batches_raise_invalid_argument(
    batch_id: str, count: int, size: int, fields: list[str]
) -> None:
    limits = BatchLimits(max_items=10, max_bytes=1024)
    if not fields:
        check_batch("request_id", batch_id, "events", count, size, limits)
        return
    with pytest.raises(InvalidArgument) as caught:
        check_batch("request_id", batch_id, "events", count, size, limits)
    assert [v.field for v in caught.value.violations] == fields
