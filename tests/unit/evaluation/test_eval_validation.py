"""Strict validation of conditions being written: every kind of problem, with its path, and no
problem in a well-formed GrowthBook condition."""

from __future__ import annotations

from typing import Any

import pytest

from support.vectors import cases
from verdict.evaluation import (
    MAX_CONDITION_DEPTH,
    ConditionProblem,
    evaluate_condition,
    validate_condition,
)

# GrowthBook's cases whose condition is malformed on purpose (they check that it never matches,
# or that an unknown group is treated as empty); validation refuses each at the given path.
MALFORMED_VECTORS = {
    "$in - not array": "num.$in",
    "$ini - not array": "num.$ini",
    "unknown operator - pass": "name.$regx",
    "$regex invalid - fail": "name.$regex",
    "$notInGroup passes for unknown group id": "id.$notInGroup",
}


def _paths(condition: Any, **options: Any) -> list[str]:
    return [problem.path for problem in validate_condition(condition, **options)]


@pytest.mark.parametrize("case", cases("evalCondition"))
def test_growthbook_conditions_validate_unless_malformed_on_purpose(case: list[Any]) -> None:
    name, condition, _attributes, _expected, *rest = case
    known_groups = set(rest[0]) if rest else set()
    assert _paths(condition, known_groups=known_groups) == (
        [MALFORMED_VECTORS[name]] if name in MALFORMED_VECTORS else []
    )


def test_every_malformed_vector_exists() -> None:
    names = {case.values[0][0] for case in cases("evalCondition")}
    assert set(MALFORMED_VECTORS) <= names


@pytest.mark.parametrize("condition", [None, [], "country", 3, True, [{"a": 1}]])
def test_a_condition_that_is_no_object_is_refused_at_the_root(condition: Any) -> None:
    [problem] = validate_condition(condition)
    assert problem.path == "" and "a condition is an object" in problem.message


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ({"x": {"$foo": 1}}, "x.$foo", "unknown operator $foo"),
        ({"x": {"$in": "US"}}, "x.$in", "takes an array, not a string"),
        ({"x": {"$nin": {"a": 1}}}, "x.$nin", "takes an array, not an object"),
        ({"x": {"$ini": 1}}, "x.$ini", "takes an array"),
        ({"x": {"$nini": None}}, "x.$nini", "takes an array"),
        ({"x": {"$all": "a"}}, "x.$all", "takes an array"),
        ({"x": {"$alli": True}}, "x.$alli", "takes an array"),
        ({"x": {"$in": ["a", ["b"]]}}, "x.$in[1]", "not an array"),
        ({"x": {"$all": [{"$foo": 1}]}}, "x.$all[0].$foo", "unknown operator"),
        ({"x": {"$size": "3"}}, "x.$size", "takes a number or an operator object"),
        ({"x": {"$size": {"a": 1}}}, "x.$size", "takes a number or an operator object"),
        ({"x": {"$size": {"$gt": []}}}, "x.$size.$gt", "takes a number or a string"),
        ({"x": {"$exists": 1}}, "x.$exists", "takes true or false, not a number"),
        ({"x": {"$exists": "true"}}, "x.$exists", "takes true or false"),
        ({"x": {"$type": "int"}}, "x.$type", "takes one of array, boolean, null"),
        ({"x": {"$type": 1}}, "x.$type", "takes one of"),
        ({"x": {"$regex": 5}}, "x.$regex", "a pattern is a string, not int"),
        ({"x": {"$regex": "("}}, "x.$regex", "not a valid regular expression"),
        ({"x": {"$regexi": "(a)\\1"}}, "x.$regexi", "backreferences"),
        ({"x": {"$regex": "a(?=b)"}}, "x.$regex", "lookaround"),
        ({"x": {"$vgt": 2}}, "x.$vgt", "takes a version string, not a number"),
        ({"x": {"$veq": None}}, "x.$veq", "takes a version string"),
        ({"x": {"$vlte": ["1"]}}, "x.$vlte", "takes a version string"),
        ({"x": {"$elemMatch": [1]}}, "x.$elemMatch", "takes an object, not an array"),
        ({"x": {"$elemMatch": {"$foo": 1}}}, "x.$elemMatch.$foo", "unknown operator"),
        ({"x": {"$elemMatch": {"y": {"$in": 1}}}}, "x.$elemMatch.y.$in", "takes an array"),
        ({"x": {"$not": "a"}}, "x.$not", "takes an object, not a string"),
        ({"x": {"$not": {"$in": 1}}}, "x.$not.$in", "takes an array"),
        ({"$not": [{"a": 1}]}, "$not", "takes a condition object, not an array"),
        ({"$and": {"a": 1}}, "$and", "takes an array of condition objects, not an object"),
        ({"$or": [{"a": 1}, 2]}, "$or[1]", "must be a condition object, not a number"),
        ({"$nor": "a"}, "$nor", "takes an array"),
        ({"x": {"$inGroup": 1}}, "x.$inGroup", "takes a saved group key, not a number"),
        ({"x": {"$notInGroup": ["g"]}}, "x.$notInGroup", "takes a saved group key"),
        ({"x": {"$eq": [1]}}, "x.$eq", "takes a string, number, boolean or null, not an array"),
        ({"x": {"$ne": {"a": 1}}}, "x.$ne", "not an object"),
        ({"x": {"$lt": True}}, "x.$lt", "takes a number or a string, not a boolean"),
        ({"x": {"$gte": None}}, "x.$gte", "takes a number or a string, not null"),
        ({"x": {"$gt": 1, "y": 2}}, "x", "mixes operators ($gt) with plain keys"),
        ({"x": {1, 2}}, "x", "set is no JSON value"),
    ],
)
def test_each_kind_of_problem_is_refused_at_its_path(
    condition: dict[str, Any], path: str, message: str
) -> None:
    [problem] = validate_condition(condition)
    assert problem.path == path
    assert message in problem.message


def test_the_path_goes_through_logical_operators_and_lists() -> None:
    condition = {"$and": [{"a": 1}, {"email": {"$regex": "("}}]}
    assert _paths(condition) == ["$and[1].email.$regex"]
    condition = {"$or": [{"$nor": [{"x": {"$in": 1}}]}], "org.tier": {"$foo": 1}}
    assert _paths(condition) == ["$or[0].$nor[0].x.$in", "org.tier.$foo"]


def test_every_problem_is_reported_not_only_the_first() -> None:
    condition = {"a": {"$in": 1, "$exists": 2}, "b": {"$bad": 1}, "$or": [3]}
    assert _paths(condition) == ["a.$in", "a.$exists", "b.$bad", "$or[0]"]


def test_saved_groups_are_checked_only_when_the_known_groups_are_given() -> None:
    condition = {"id": {"$inGroup": "beta"}, "org": {"$notInGroup": "gone"}}
    assert validate_condition(condition) == []
    assert validate_condition(condition, known_groups={"beta"}) == [
        ConditionProblem("org.$notInGroup", "names no saved group ('gone')")
    ]


@pytest.mark.parametrize(
    "condition",
    [
        {},
        {"$or": [], "$and": [], "$nor": []},
        {"x": {}},  # compared as an empty object
        {"x": {"a": {"b": 1}}, "y": [1, [2]], "z": None},
        {"$groups": {"$elemMatch": {"$eq": "a"}}},  # a $-named attribute, as GrowthBook reads it
        {"x": {"$size": {"$gt": 0}}, "t": {"$type": "array"}, "e": {"$exists": False}},
        {"x": {"$elemMatch": {"price": {"$gt": 10}}}, "y": {"$all": [{"$gt": 1}, "a"]}},
        {"v": {"$vgte": "1.2.3", "$vlt": "2.0.0"}, "n": {"$gt": 1.5, "$lte": "9"}},
        {"ua": {"$regex": "(?<os>iOS|Android) (\\d+)", "$not": {"$regexi": "bot"}}},
        {"id": {"$in": ["a", 1, True, None], "$nin": []}},
    ],
)
def test_well_formed_conditions_have_no_problem(condition: dict[str, Any]) -> None:
    assert validate_condition(condition) == []


def _nested(levels: int) -> dict[str, Any]:
    """A condition of exactly `levels` JSON levels."""
    condition: dict[str, Any] = {"x": 1}
    depth = 1
    while depth + 2 <= levels:
        condition = {"$and": [condition]}
        depth += 2
    if depth < levels:
        condition = {"$not": condition}
    return condition


def test_the_depth_limit_counts_json_levels() -> None:
    assert MAX_CONDITION_DEPTH == 10
    assert validate_condition(_nested(10)) == []
    problems = validate_condition(_nested(11))
    assert len(problems) == 1 and problems[0].message == "nested deeper than 10 levels"
    assert validate_condition({"x": {"$in": [1]}}, max_depth=3) == []
    assert _paths({"x": {"$in": [1]}}, max_depth=2) == ["x.$in"]
    assert _paths({"x": {"a": {"b": {}}}}, max_depth=3) == ["x.a.b"]


def test_a_deep_problem_is_reported_once_at_the_limit() -> None:
    condition: dict[str, Any] = {"x": 1}
    for _ in range(40):
        condition = {"$not": condition}
    [problem] = validate_condition(condition)
    assert problem.path == ".".join(["$not"] * 10)


def test_evaluation_stays_lenient_for_conditions_already_stored() -> None:
    """Validation is for writes: a stored condition it refuses still evaluates, never matching."""
    condition = {"x": {"$foo": 1}}
    assert validate_condition(condition)
    assert evaluate_condition(condition, {"x": 1}) is False
