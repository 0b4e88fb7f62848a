"""The JavaScript value semantics the condition language relies on."""

from __future__ import annotations

import math
from typing import Any

import pytest

from verdict.evaluation.jsvalues import (
    compare,
    number_to_string,
    stringify,
    to_number,
    to_string,
    truthy,
)
from verdict.evaluation.versions import padded_version_string


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e21, "1e+21"),
        (2.0**60, "1152921504606847000"),
        (2.5e25, "2.5e+25"),
        (-3.25, "-3.25"),
        (math.inf, "Infinity"),
        (math.nan, "NaN"),
    ],
)
def test_eval_number_to_string_follows_ecmascript(number: float, text: str) -> None:
    assert number_to_string(number) == text


@pytest.mark.parametrize(
    ("value", "number"),
    [("", 0.0), (" 8 ", 8.0), ("0x1f", 31.0), ("1e3", 1000.0), (".5", 0.5),
     ("-Infinity", -math.inf), (None, 0.0), (True, 1.0), ([7], 7.0), ([], 0.0)],
)  # fmt: skip
def test_eval_to_number_follows_ecmascript(value: Any, number: float) -> None:
    assert to_number(value) == number


@pytest.mark.parametrize("value", ["abc", "1_000", "inf", "nan", "0x", [1, 2], {"a": 1}])
def test_eval_to_number_of_non_numbers_is_nan(value: Any) -> None:
    assert math.isnan(to_number(value))


def test_eval_to_string_and_truthiness() -> None:
    assert to_string([1, None, [2, 3]]) == "1,,2,3"
    assert to_string({"a": 1}) == "[object Object]"
    assert to_string(2.0) == "2"
    assert to_string(2**60) == "1152921504606847000"
    assert [truthy(v) for v in ([], {}, "", 0, math.nan, "0")] == [
        True,
        True,
        False,
        False,
        False,
        True,
    ]


def test_eval_string_comparison_uses_utf16_code_units() -> None:
    # U+FF5E sorts after U+1F600 by code point but before it by UTF-16 code unit (0xD83D).
    assert compare("\uff5e", "\U0001f600") == 1
    assert compare("b", "a") == 1
    assert compare(None, 0) == 0
    assert compare("x", 1) is None


def test_eval_stringify_matches_json_stringify() -> None:
    assert (
        stringify({"b": 1, "2": [1.0, None, True], "1": "é"}) == '{"1":"é","2":[1,null,true],"b":1}'
    )
    assert stringify(math.nan) == "null"


@pytest.mark.parametrize(
    ("lower", "higher"),
    [("1.0.0-alpha", "1.0.0"), ("1.9.0", "1.10.0"), ("1.0.0-beta.2", "1.0.0-beta.11"),
     ("0", "0.0.1"), ("v2.0.0", "10.0.0")],
)  # fmt: skip
def test_eval_padded_versions_order_like_semver(lower: str, higher: str) -> None:
    assert padded_version_string(lower) < padded_version_string(higher)


def test_eval_padded_version_of_non_strings() -> None:
    assert padded_version_string(None) == padded_version_string("0")
    assert padded_version_string(2) == padded_version_string("2")
    assert padded_version_string("1.2.3+build") == padded_version_string("v1.2.3")
