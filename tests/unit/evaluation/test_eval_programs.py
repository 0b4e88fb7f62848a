"""Condition programs (`programs.py` lowered, `_native.c` evaluated) answer what the closures of
`conditions.py` answer: on GrowthBook's cases, on random conditions and attributes, and with the
C code deciding the common cases itself."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from support.vectors import cases
from verdict.evaluation import Evaluator, ExperimentConfig, VariantConfig, compile_condition, engine
from verdict.evaluation.programs import (
    AND,
    OR,
    PATH,
    V_EQ_STR,
    V_IN_STR,
    V_NUM,
    V_REL,
    V_STR,
    lower_condition,
)

native = pytest.importorskip("verdict.evaluation._native", reason="accelerator not built")


def program_of(condition: dict[str, Any], groups: dict[str, list[Any]] | None = None) -> Any:
    return native.Program(lower_condition(condition, groups))


@pytest.mark.parametrize("case", cases("evalCondition"))
def test_program_matches_growthbook_cases(case: list[Any]) -> None:
    _name, condition, attributes, expected, *rest = case
    groups = rest[0] if rest else None
    assert program_of(condition, groups)(attributes) is expected


VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**53, 2**53 + 1, -(2**60), 0.0, -0.0, 1.0, 1.5, 30.0, 31.0,
    math.nan, math.inf, -math.inf, "", "0", "1", "30", "a", "A", "FR", "fr", "US", "free", "pro",
    "true", "null", "2.1.0", "2.10.0", "v2.1.0-rc.1", "1.9", "é", "Éric", "üñï", "a.b",
    [], ["FR"], ["a", "b"], [1, "1"], [None], {"x": 1}, {"FR": True},
]  # fmt: skip
KEYS = ["country", "plan", "age", "v", "tags", "beta", "org"]


def random_value(rng: random.Random) -> Any:
    return rng.choice(VALUES)


def random_operand(rng: random.Random, depth: int) -> Any:
    """A path's condition: a literal or an operator object."""
    if rng.random() < 0.3:
        return random_value(rng)
    ops: dict[str, Any] = {}
    for _ in range(rng.randint(1, 3)):
        op = rng.choice([
            "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$ini", "$nini", "$exists",
            "$regex", "$regexi", "$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte", "$type",
            "$size", "$elemMatch", "$all", "$not", "$inGroup", "$notInGroup", "$unknown",
        ])  # fmt: skip
        if op in ("$in", "$nin", "$ini", "$nini", "$all"):
            arg: Any = [random_value(rng) for _ in range(rng.randint(0, 4))]
            if rng.random() < 0.1:
                arg = random_value(rng)
        elif op in ("$regex", "$regexi"):
            arg = rng.choice(["^F", "r$", "^(fr|en)", "[", "a", "É", 3])
        elif op == "$not" and depth < 2:
            arg = random_operand(rng, depth + 1)
        elif op == "$elemMatch" and depth < 2:
            arg = rng.choice([random_operand(rng, depth + 1), {"x": random_value(rng)}])
        elif op in ("$inGroup", "$notInGroup"):
            arg = rng.choice(["g1", "g2", "missing", 1])
        elif op == "$type":
            arg = rng.choice(["string", "number", "boolean", "null", "array", "object"])
        elif op == "$size":
            arg = rng.choice([0, 1, 2, {"$gt": 0}])
        else:
            arg = random_value(rng)
        ops[op] = arg
    return ops


def random_condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    condition: dict[str, Any] = {}
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.15 and depth < 2:
            op = rng.choice(["$or", "$and", "$nor"])
            condition[op] = [random_condition(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        elif roll < 0.2 and depth < 2:
            condition["$not"] = random_condition(rng, depth + 1)
        else:
            key = rng.choice([*KEYS, "org.tier", "tags.0", "tags.length"])
            condition[key] = random_operand(rng, depth)
    return condition


def random_attributes(rng: random.Random) -> Any:
    if rng.random() < 0.03:
        return rng.choice([None, [], "x"])  # not a dict: every path goes to its fallback
    attributes = {key: random_value(rng) for key in KEYS if rng.random() < 0.7}
    if rng.random() < 0.2:
        attributes["org"] = {"tier": random_value(rng)}
    return attributes


def test_program_matches_closures_on_random_conditions() -> None:
    rng = random.Random(20261127)
    groups = {"g1": ["FR", 1, None, True], "g2": []}
    checked = 0
    for _ in range(3000):
        condition = random_condition(rng)
        try:
            closure = compile_condition(condition, groups)
        except ValueError:
            continue
        program = program_of(condition, groups)
        for _ in range(10):
            attributes = random_attributes(rng)
            try:
                expected: Any = closure(attributes)
            except Exception as error:
                expected = type(error)
            try:
                actual: Any = program(attributes)
            except Exception as error:
                actual = type(error)
            assert actual == expected, (condition, attributes)
            checked += 1
    assert checked > 20_000


def _boom(_value: Any) -> bool:
    raise AssertionError("the C code should have decided this value itself")


@pytest.mark.parametrize(
    ("node", "attributes", "expected"),
    [
        ((V_IN_STR, frozenset({"FR", "DE"}), False, _boom), {"k": "FR"}, True),
        ((V_IN_STR, frozenset({"FR", "DE"}), True, _boom), {"k": "US"}, True),
        ((V_EQ_STR, "pro", True), {"k": 3.0}, True),
        ((V_STR, "pro", _boom), {"k": "pro"}, True),
        ((V_NUM, 30.0, _boom), {"k": 30}, True),
        ((V_REL, 4, 30.0, None, _boom), {"k": 31.5}, True),
        ((V_REL, 0, None, "b", _boom), {"k": "a"}, True),
    ],
)
def test_program_decides_common_values_without_python(
    node: tuple[Any, ...], attributes: dict[str, Any], expected: bool
) -> None:
    program = native.Program((AND, ((PATH, "k", node, _boom),)))
    assert program(attributes) is expected


def test_program_hands_other_values_to_the_fallback() -> None:
    seen: list[Any] = []

    def fallback(value: Any) -> bool:
        seen.append(value)
        return True

    program = native.Program((OR, ((PATH, "k", (V_STR, "pro", fallback), fallback),)))
    assert program({"k": ["pro"]}) is True and seen == [["pro"]]
    assert program(["not", "a", "dict"]) is True and seen[-1] == ["not", "a", "dict"]


@pytest.mark.parametrize(
    "bad",
    [(), (99,), (AND, [1]), (PATH, 1, (V_STR, "a", _boom), _boom), (PATH, "k", (AND, ()), _boom),
     (AND, ((PATH, "k", (V_STR, "a", "not callable"), _boom),)), (V_STR, "a", _boom)],
)  # fmt: skip
def test_malformed_programs_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="malformed condition program"):
        native.Program(bad)


def test_deeply_nested_programs_are_refused_not_crashing() -> None:
    node: Any = (AND, ())
    for _ in range(100):
        node = (AND, (node,))
    with pytest.raises(ValueError, match="nested too deeply"):
        native.Program(node)


def test_the_evaluator_runs_programs_for_its_conditions() -> None:
    config = ExperimentConfig(
        key="e",
        variants=(VariantConfig("a", 0.5, "{}", is_control=True), VariantConfig("b", 0.5, "{}")),
        condition={"country": {"$in": ["FR"]}},
    )
    evaluator = Evaluator([config], native=True)
    record_condition = engine._program(evaluator._by_key["e"], {})
    assert isinstance(record_condition, native.Program)
    assert evaluator.assign("u", {"country": "FR"})[0].reason.name == "ASSIGNED"
    assert evaluator.assign("u", {"country": "US"})[0].reason.name == "NOT_TARGETED"


def test_a_condition_too_deep_for_a_program_keeps_its_closure() -> None:
    condition: dict[str, Any] = {"country": "FR"}
    for _ in range(40):  # each $not is two program levels: deeper than _native.c's limit
        condition = {"$not": {"$not": condition}}
    config = ExperimentConfig(
        key="deep",
        variants=(VariantConfig("a", 0.5, "{}", is_control=True), VariantConfig("b", 0.5, "{}")),
        condition=condition,
    )
    evaluator = Evaluator([config], native=True)
    compiled = evaluator._by_key["deep"]
    assert engine._program(compiled, {}) is compiled.condition  # the closure, not a Program
    assert evaluator.assign("u", {"country": "FR"})[0].reason.name == "ASSIGNED"
    assert evaluator.assign("u", {"country": "DE"})[0].reason.name == "NOT_TARGETED"
