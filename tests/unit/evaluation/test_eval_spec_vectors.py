"""Every case of GrowthBook's SDK test vectors (../shared/vectors/bucketing-cases.json).

The file is read where it lies (beside the checkout, or at $VERDICT_VECTORS); where it is absent
the cases skip with a message saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from verdict.evaluation import (
    choose_variation,
    evaluate_condition,
    get_bucket_ranges,
    get_equal_weights,
    hash,
    in_namespace,
)

_REPO_ROOT = Path(__file__).resolve().parents[3]
_DEFAULT_VECTORS = _REPO_ROOT.parent / "shared" / "vectors" / "bucketing-cases.json"
VECTORS = Path(os.environ.get("VERDICT_VECTORS", str(_DEFAULT_VECTORS)))


def _cases(section: str) -> list[Any]:
    """The section's cases as pytest params, or one skipped param when the file is absent."""
    if not VECTORS.is_file():
        reason = f"GrowthBook spec vectors not found at {VECTORS} (set VERDICT_VECTORS)"
        return [pytest.param(None, id=f"{section}-vectors-missing", marks=pytest.mark.skip(reason))]
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))[section]
    assert cases, f"section {section} of {VECTORS} is empty"
    return [pytest.param(case, id=_case_id(section, i, case)) for i, case in enumerate(cases)]


def _case_id(section: str, index: int, case: list[Any]) -> str:
    if section == "hash":
        label = f"v{case[2]}-{case[0]!r}-{case[1]!r}"
    elif section == "getEqualWeights":
        label = f"n={case[0]}"
    else:
        label = str(case[0])
    return f"{index:03d}-{label}"


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
