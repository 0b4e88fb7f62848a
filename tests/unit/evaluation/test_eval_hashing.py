"""FNV-1a and GrowthBook's hash beyond the spec vectors: fast and pure paths agree."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from verdict.evaluation import hash
from verdict.evaluation.hashing import (
    _fnv1a_32_ascii,
    _fnv1a_32_units,
    fnv1a_32,
    make_hasher,
)


def test_eval_fnv1a_32_matches_published_test_vectors() -> None:
    # From the FNV reference test suite (32-bit FNV-1a).
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_eval_fast_ascii_path_equals_pure_python(text: str) -> None:
    assert fnv1a_32(text) == _fnv1a_32_ascii(text) == _fnv1a_32_units(text)


def test_eval_non_ascii_hashes_utf16_code_units_like_javascript() -> None:
    # JavaScript XORs whole UTF-16 code units: "é" is one unit 0xE9, "😀" two surrogates.
    expected = ((0x811C9DC5 ^ 0xE9) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a_32("é") == expected
    hval = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):
        hval = ((hval ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a_32("😀") == hval


@given(st.text(max_size=20), st.text(max_size=40), st.sampled_from([1, 2]))
def test_eval_hash_is_in_unit_interval_on_its_grid(seed: str, value: str, version: int) -> None:
    n = hash(seed, value, version)
    assert n is not None and 0 <= n < 1
    grid = 10000 if version == 2 else 1000
    assert abs(n * grid - round(n * grid)) < 1e-6


@given(st.text(max_size=20), st.text(max_size=40), st.sampled_from([1, 2]))
def test_eval_precompiled_hasher_equals_hash(seed: str, value: str, version: int) -> None:
    assert make_hasher(seed, version)(value) == hash(seed, value, version)


def test_eval_unknown_hash_version_is_none() -> None:
    assert hash("seed", "value", 3) is None
    assert make_hasher("seed", 0)("value") is None
