"""Every case of GrowthBook's SDK test vectors (tests/vectors/bucketing-cases.json), one test
each; a missing or empty file fails the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.vectors import VECTORS, VectorsMissing
from support.vectors import cases as _cases
from verdict.evaluation import (
    choose_variation,
    evaluate_condition,
    get_bucket_ranges,
    get_equal_weights,
    hash,
    in_namespace,
)


def _ranges_close(actual: list[tuple[float, float]], expected: list[list[float]]) -> bool:
    return len(actual) == len(expected) and all(
        start == pytest.approx(e_start, abs=1e-9) and end == pytest.approx(e_end, abs=1e-9)
        for (start, end), (e_start, e_end) in zip(actual, expected, strict=True)
    )


@pytest.mark.parametrize("case", _cases("hash"))
def test_eval_hash_matches_spec(case: list[Any]) -> None:
    seed, value, version, expected = case
    assert hash(seed, value, version) == expected


@pytest.mark.parametrize("case", _cases("getBucketRange"))
def test_eval_bucket_ranges_match_spec(case: list[Any]) -> None:
    _name, (num_variations, coverage, weights), expected = case
    actual = get_bucket_ranges(num_variations, coverage, weights)
    assert _ranges_close(actual, expected), actual


@pytest.mark.parametrize("case", _cases("chooseVariation"))
def test_eval_choose_variation_matches_spec(case: list[Any]) -> None:
    _name, n, ranges, expected = case
    assert choose_variation(n, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize("case", _cases("inNamespace"))
def test_eval_in_namespace_matches_spec(case: list[Any]) -> None:
    _name, unit_id, (namespace_id, start, end), expected = case
    assert in_namespace(unit_id, (namespace_id, start, end)) is expected


@pytest.mark.parametrize("case", _cases("getEqualWeights"))
def test_eval_equal_weights_match_spec(case: list[Any]) -> None:
    num_variations, expected = case
    assert get_equal_weights(num_variations) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("case", _cases("evalCondition"))
def test_eval_condition_matches_spec(case: list[Any]) -> None:
    _name, condition, attributes, expected, *rest = case
    saved_groups = rest[0] if rest else None
    assert evaluate_condition(condition, attributes, saved_groups) is expected


# The committed file is the one in use, complete: a lost or truncated copy fails here.
SECTION_SIZES = {
    "hash": 15,
    "getBucketRange": 13,
    "chooseVariation": 13,
    "inNamespace": 16,
    "getEqualWeights": 6,
    "evalCondition": 166,
}


@pytest.mark.parametrize(("section", "size"), SECTION_SIZES.items())
def test_eval_vectors_are_committed_whole(section: str, size: int) -> None:
    assert VECTORS.is_relative_to(Path(__file__).resolve().parents[2])
    assert len(_cases(section)) == size


def test_eval_missing_vectors_fail_instead_of_skipping(tmp_path: Path) -> None:
    with pytest.raises(VectorsMissing, match="missing"):
        _cases("hash", tmp_path / "absent.json")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hash": []}), encoding="utf-8")
    with pytest.raises(VectorsMissing, match="empty"):
        _cases("hash", empty)
