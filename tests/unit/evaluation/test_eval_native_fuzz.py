"""Fuzzing the compiled condition programs and the compiled Evaluator against their Python
references with hypothesis: random conditions (malformed ones included) and attributes of any
JSON shape. `make check-native` runs these with thousands of examples under AddressSanitizer and
UndefinedBehaviorSanitizer."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verdict.evaluation import (
    ConditionError,
    Evaluator,
    ExperimentConfig,
    VariantConfig,
    compile_condition,
)
from verdict.evaluation.programs import lower_condition

native = pytest.importorskip("verdict.evaluation._native", reason="accelerator not built")

FUZZ_EXAMPLES = int(os.environ.get("VERDICT_FUZZ_EXAMPLES", "100"))
"""Examples per fuzz test: a hundred in `make test`, thousands in `make check-native`."""
fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

KEYS = ["country", "plan", "age", "tags", "org", "org.tier", "tags.0", "$groups"]
OPERATORS = [
    "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$ini", "$nini", "$all", "$alli",
    "$exists", "$type", "$regex", "$regexi", "$veq", "$vgt", "$vlte", "$size", "$elemMatch",
    "$not", "$inGroup", "$notInGroup", "$foo",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "FR", "fr", "pro", "1.2.3", "v2.0.0-rc.1", "é", "a.b", "^F", "(", "g1"]),
    st.text(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=8,
)


def _operand(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return values | st.dictionaries(st.sampled_from(OPERATORS), inner | values, min_size=1)


operands = st.recursive(values, _operand, max_leaves=10)
conditions = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), operands, max_size=3),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or", "$nor", "$not", *KEYS]),
        st.lists(inner, max_size=3) | inner | operands,
        max_size=3,
    ),
    max_leaves=6,
)
attributes = st.one_of(
    st.dictionaries(
        st.sampled_from(["country", "plan", "age", "tags", "org", "$groups", "id"]), values
    ),
    values,
)
GROUPS = {"g1": ["FR", 1, None, True], "g2": []}


def _answer(function: Any, argument: Any) -> Any:
    try:
        return function(argument)
    except Exception as error:  # the same exception type on both paths counts as agreement
        return type(error)


@fuzz
@given(conditions, st.lists(attributes, min_size=1, max_size=4))
def test_fuzz_programs_answer_what_the_closures_answer(
    condition: dict[str, Any], units: list[Any]
) -> None:
    try:
        closure = compile_condition(condition, GROUPS)
    except ConditionError:
        return
    try:
        program = native.Program(lower_condition(condition, GROUPS))
    except ValueError:  # nested too deeply for a program: the evaluator keeps the closure
        return
    for unit in units:
        assert _answer(program, unit) == _answer(closure, unit), (condition, unit)


@fuzz
@given(st.lists(conditions, min_size=1, max_size=4), st.lists(attributes, min_size=1, max_size=4))
def test_fuzz_compiled_evaluator_answers_what_the_reference_answers(
    chosen: list[dict[str, Any]], units: list[Any]
) -> None:
    configs = []
    for i, condition in enumerate(chosen):
        try:
            compile_condition(condition, GROUPS)
        except ConditionError:
            continue
        variants = (VariantConfig("a", 0.5, is_control=True), VariantConfig("b", 0.5))
        configs.append(ExperimentConfig(f"e{i}", variants, condition=condition))
    fast = Evaluator(configs, GROUPS, native=True)
    slow = Evaluator(configs, GROUPS, native=False)
    rng = random.Random(len(units))
    for unit in units:
        unit_attributes = unit if isinstance(unit, dict) else {"x": unit}
        unit_id = rng.choice(["u-1", "ü", "42"])
        expected = _answer(lambda a: slow.assign(a[0], a[1], now=1.0), (unit_id, unit_attributes))
        actual = _answer(lambda a: fast.assign(a[0], a[1], now=1.0), (unit_id, unit_attributes))
        assert actual == expected
