"""The condition language beyond the spec vectors: GrowthBook's semantics, in general."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verdict.evaluation import ConditionError, compile_condition, evaluate_condition
from verdict.evaluation.jsvalues import is_number

ev = evaluate_condition


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [(1, True), (1.0, True), ("1", False), (True, False), (None, False), ([2, 1], True)],
)
def test_eval_in_uses_strict_equality_not_python_equality(attribute: Any, expected: bool) -> None:
    assert ev({"x": {"$in": [1, "2", False]}}, {"x": attribute}) is expected


def test_eval_in_distinguishes_true_from_one_and_false_from_zero() -> None:
    assert ev({"x": {"$in": [True]}}, {"x": 1}) is False
    assert ev({"x": {"$in": [0]}}, {"x": False}) is False
    assert ev({"x": {"$in": [True]}}, {"x": True}) is True
    assert ev({"x": {"$nin": [True]}}, {"x": 1}) is True


def test_eval_in_never_matches_arrays_or_objects_by_value() -> None:
    # JavaScript's includes compares objects by reference.
    assert ev({"x": {"$in": [{"a": 1}]}}, {"x": {"a": 1}}) is False
    assert ev({"x": {"$in": [[1]]}}, {"x": [[1]]}) is False


def test_eval_nin_and_in_with_a_non_list_argument_both_fail() -> None:
    assert ev({"x": {"$nin": "abc"}}, {"x": "z"}) is False
    assert ev({"x": {"$in": "abc"}}, {"x": "a"}) is False


def test_eval_missing_attribute_is_null() -> None:
    assert ev({"x": {"$exists": False}}, {}) is True
    assert ev({"x": {"$type": "null"}}, {}) is True
    assert ev({"x": {"$lt": 1}}, {}) is True  # JavaScript: null < 1
    assert ev({"x": {"$in": [None]}}, {}) is True
    assert ev({"x": "null"}, {}) is True  # the reference compares `null + ""` with "null"


def test_eval_literals_coerce_like_the_reference() -> None:
    assert ev({"n": 10}, {"n": "10"}) is True
    assert ev({"n": 10}, {"n": "1e1"}) is True
    assert ev({"n": 10}, {"n": "ten"}) is False
    assert ev({"s": "true"}, {"s": True}) is True
    assert ev({"s": "1,2"}, {"s": [1, 2]}) is True
    assert ev({"b": True}, {"b": "yes"}) is True
    assert ev({"b": True}, {"b": []}) is True  # arrays are truthy in JavaScript
    assert ev({"b": False}, {"b": 0}) is True
    assert ev({"b": False}, {}) is False


def test_eval_relations_coerce_like_javascript() -> None:
    assert ev({"x": {"$gt": 5}}, {"x": "8"}) is True
    assert ev({"x": {"$gt": 5}}, {"x": "abc"}) is False  # NaN compares false
    assert ev({"x": {"$lte": 5}}, {"x": "abc"}) is False
    assert ev({"x": {"$gt": "10"}}, {"x": "9"}) is True  # two strings: lexicographic
    assert ev({"x": {"$gte": 1}}, {"x": True}) is True
    assert ev({"x": {"$lt": 2**60}}, {"x": 2**60 - 1}) is False  # both are 2**60 as doubles


def test_eval_eq_is_strict() -> None:
    assert ev({"x": {"$eq": 1}}, {"x": 1.0}) is True
    assert ev({"x": {"$eq": 1}}, {"x": "1"}) is False
    assert ev({"x": {"$ne": 1}}, {"x": True}) is True
    assert ev({"x": {"$eq": [1]}}, {"x": [1]}) is False  # arrays equal only themselves


def test_eval_nested_paths_and_array_indexes() -> None:
    attributes = {"org": {"tier": "gold", "seats": [10, 20]}, "tags": ["a", "b"]}
    assert ev({"org.tier": "gold"}, attributes) is True
    assert ev({"org.seats.1": 20}, attributes) is True
    assert ev({"org.seats.2": {"$exists": False}}, attributes) is True
    assert ev({"tags.length": 2}, attributes) is True
    assert ev({"org.tier.name": {"$exists": True}}, attributes) is False


def test_eval_array_attribute_matches_when_any_element_matches() -> None:
    assert ev({"tags": {"$in": ["x", "b"]}}, {"tags": ["a", "b"]}) is True
    assert ev({"tags": {"$nin": ["x", "b"]}}, {"tags": ["a", "b"]}) is False
    assert ev({"tags": {"$ini": ["B"]}}, {"tags": ["a", "b"]}) is True


def test_eval_elem_match_on_objects_and_falsy_elements() -> None:
    condition = {"items": {"$elemMatch": {"price": {"$gt": 10}, "kind": "book"}}}
    assert ev(condition, {"items": [{"price": 5, "kind": "book"}, {"price": 11, "kind": "book"}]})
    assert not ev(condition, {"items": [{"price": 11, "kind": "pen"}]})
    assert not ev({"n": {"$elemMatch": {"$eq": 0}}}, {"n": [0]})  # the reference skips falsy


def test_eval_logical_operators_and_their_empty_forms() -> None:
    attributes = {"a": 1, "b": 2}
    assert ev({"$or": []}, attributes) is True
    assert ev({"$and": []}, attributes) is True
    assert ev({"$nor": []}, attributes) is False  # not (empty $or, which holds)
    assert ev({"$not": {"a": 1}}, attributes) is False
    assert ev({"$or": [{"a": 2}, {"b": 2}], "$nor": [{"a": 3}]}, attributes) is True
    assert ev({"a": {"$not": {"$in": [2, 3]}}}, attributes) is True


def test_eval_saved_groups_resolve_by_id_with_strict_membership() -> None:
    groups = {"beta": ["u1", 7], "empty": []}
    assert ev({"id": {"$inGroup": "beta"}}, {"id": "u1"}, groups) is True
    assert ev({"id": {"$inGroup": "beta"}}, {"id": "7"}, groups) is False
    assert ev({"id": {"$inGroup": "missing"}}, {"id": "u1"}, groups) is False
    assert ev({"id": {"$notInGroup": "empty"}}, {"id": "u1"}, groups) is True
    assert ev({"id": {"$inGroup": "beta"}}, {"id": "u1"}) is False  # no groups given


def test_eval_regex_operators() -> None:
    assert ev({"ua": {"$regex": "^Mozilla/5"}}, {"ua": "Mozilla/5.0"}) is True
    assert ev({"ua": {"$regex": "(?<v>\\d+)\\.(?<w>\\d+)"}}, {"ua": "1.1"}) is True  # JS named
    # A backreference needs backtracking: RE2 refuses it, so it never matches (and is refused
    # when a condition is written, see validation).
    assert ev({"ua": {"$regex": "(?<v>\\d+)\\.\\k<v>"}}, {"ua": "1.1"}) is False
    assert ev({"ua": {"$regexi": "MOBILE"}}, {"ua": "android mobile"}) is True
    assert ev({"n": {"$regex": "^12$"}}, {"n": 12}) is True  # test() reads a string
    assert ev({"ua": {"$regex": "("}}, {"ua": "("}) is False
    assert ev({"ua": {"$regex": 5}}, {"ua": "5"}) is False


def test_eval_all_size_and_type() -> None:
    assert ev({"t": {"$all": []}}, {"t": []}) is True
    assert ev({"t": {"$all": "ab"}}, {"t": ["a", "b"]}) is False
    assert ev({"t": {"$size": {"$gte": 2}}}, {"t": [1, 2]}) is True
    assert ev({"t": {"$type": "array"}}, {"t": (1, 2)}) is True
    assert ev({"t": {"$type": "boolean"}}, {"t": False}) is True
    assert ev({"t": {"$type": "number"}}, {"t": True}) is False


def test_eval_unknown_operator_never_matches() -> None:
    assert ev({"x": {"$startsWith": "a"}}, {"x": "abc"}) is False
    assert ev({"x": {"$startsWith": "a"}, "y": 1}, {"x": "abc", "y": 1}) is False


@pytest.mark.parametrize(
    "condition",
    [{"$or": {"a": 1}}, {"$and": [1]}, {"$not": [{"a": 1}]}, {"a": {1, 2}}, [{"a": 1}]],
    ids=["or-object", "and-of-number", "not-list", "set-literal", "list-condition"],
)
def test_eval_malformed_condition_is_rejected_at_compile_time(condition: Any) -> None:
    with pytest.raises(ConditionError):
        compile_condition(condition)


def test_eval_compiled_condition_is_reusable_and_pure() -> None:
    condition = {"country": {"$in": ["FR", "DE"]}, "v": {"$vgte": "2.1.0"}}
    compiled = compile_condition(condition)
    attributes = {"country": "FR", "v": "2.10.0"}
    assert [compiled(attributes) for _ in range(3)] == [True] * 3
    assert compiled({"country": "FR", "v": "2.0.9"}) is False
    assert condition == {"country": {"$in": ["FR", "DE"]}, "v": {"$vgte": "2.1.0"}}


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, math.nan, math.inf]),
    st.sampled_from(["", "0", "1", "a", "A", "true", "null"]),
)


def _same_value_zero(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return a == b or (a != a and b != b)
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a is None and b is None


@given(st.lists(scalars, max_size=6), st.one_of(scalars, st.lists(scalars, max_size=4)))
def test_eval_in_set_optimisation_agrees_with_includes(expected: list[Any], actual: Any) -> None:
    if isinstance(actual, list):
        naive = any(any(_same_value_zero(e, a) for e in expected) for a in actual)
    else:
        naive = any(_same_value_zero(e, actual) for e in expected)
    assert ev({"x": {"$in": expected}}, {"x": actual}) is naive
    assert ev({"x": {"$nin": expected}}, {"x": actual}) is (not naive)
