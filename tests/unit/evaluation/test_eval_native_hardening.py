"""The compiled accelerator does not trust its caller: wrong inputs raise, Python code run from C
(fallbacks, conditions) cannot pull objects from under it, its objects are garbage-collected,
and a drift between its field layouts and the Python side stops the import."""

from __future__ import annotations

import gc
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from verdict.evaluation import (
    Assignment,
    Evaluator,
    ExperimentConfig,
    LayerConfig,
    Reason,
    VariantConfig,
    engine,
)
from verdict.evaluation.programs import AND, PATH, V_ALL, V_PY, V_STR

native = pytest.importorskip("verdict.evaluation._native", reason="accelerator not built")

NOW = 1e9


def _config(key: str = "e", **changes: Any) -> ExperimentConfig:
    variants = (VariantConfig("a", 0.5, '{"m": 1}', is_control=True), VariantConfig("b", 0.5))
    return ExperimentConfig(key=key, variants=variants, **changes)


def _plan(records: list[tuple[Any, ...]], slots: int = 1) -> Any:
    return native.Plan(
        tuple(records), slots, Assignment, Reason.ASSIGNED, Reason.NOT_IN_TRAFFIC,
        engine.hash_value_of, True,
    )  # fmt: skip


def _record(config: ExperimentConfig, condition: Any = None) -> tuple[Any, ...]:
    compiled = Evaluator([config], native=False)._by_key[config.key]
    return engine._native_record(compiled, 0 if condition else -1, condition)


def test_layouts_of_the_built_module_match_the_python_side() -> None:
    engine.check_native_layout(native)
    assert Assignment._fields == native.ASSIGNMENT_FIELDS
    assert len(native.RECORD_FIELDS) == 25 and set(native.RECORD_FIELDS) == engine.RECORD_FIELDS


@pytest.mark.parametrize(
    ("assignment_fields", "record_fields", "message"),
    [
        (Assignment._fields[::-1], tuple(engine.RECORD_FIELDS), "builds Assignment"),
        (Assignment._fields, (*engine.RECORD_FIELDS, "extra"), "reads records"),
        (Assignment._fields, tuple(sorted(engine.RECORD_FIELDS))[1:], "reads records"),
    ],
)
def test_a_drifted_layout_stops_the_import(
    assignment_fields: tuple[str, ...], record_fields: tuple[str, ...], message: str
) -> None:
    drifted = types.SimpleNamespace(
        ASSIGNMENT_FIELDS=assignment_fields, RECORD_FIELDS=record_fields
    )
    with pytest.raises(RuntimeError, match=message):
        engine.check_native_layout(drifted)


@pytest.mark.parametrize("cut", [1, 12, 23])
def test_a_record_of_the_wrong_size_is_refused(cut: int) -> None:
    record = _record(_config())
    with pytest.raises(TypeError):
        _plan([record[:cut]])


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ranges", (0.0, 0.5, 0.5), ValueError),  # not one pair per variant
        ("ranges", (0.0, 0.5) * 3, ValueError),  # more pairs than variants
        ("ranges", [0.0, 0.5, 0.5, 1.0], ValueError),  # no tuple
        ("slot", 5, ValueError),  # beyond the plan's slots
        ("assigned", [], TypeError),
        ("key", 3, TypeError),
        ("python", 3, TypeError),  # neither None nor callable
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_is_refused(
    field: str, value: Any, error: type[Exception]
) -> None:
    fields = dict(zip(native.RECORD_FIELDS, _record(_config(), lambda _a: True), strict=True))
    fields[field] = value
    with pytest.raises(error):
        _plan([tuple(fields[name] for name in native.RECORD_FIELDS)])


def _with_python(python: Any, **config: Any) -> tuple[Any, ...]:
    fields = dict(zip(native.RECORD_FIELDS, _record(_config(**config)), strict=True))
    fields["python"] = python
    return tuple(fields[name] for name in native.RECORD_FIELDS)


def test_a_python_step_answers_for_its_experiment_after_the_schedule() -> None:
    calls: list[tuple[Any, ...]] = []
    answer = Assignment("e", None, -1, Reason.QA_MODE, None, None, False)

    def python(*args: Any) -> Assignment:
        calls.append(args)
        return answer

    plan = _plan([_with_python(python)])
    attributes = {"id": "u"}
    assert plan.assign_running("u", attributes, NOW) == [answer]
    assert plan.assign_at(0, "u", attributes, NOW) is answer
    assert calls == [("u", attributes, NOW)] * 2
    stopped = _plan([_with_python(python, running=False), _with_python(python, end_time=NOW)])
    assert stopped.assign_at(0, "u", attributes, NOW).reason is Reason.NOT_RUNNING
    assert stopped.assign_at(1, "u", attributes, NOW).reason is Reason.NOT_RUNNING
    assert len(calls) == 2  # a stopped experiment is answered before its python step


@pytest.mark.parametrize("returned", [None, ("e", None), "assignment"])
def test_a_python_step_answering_something_else_than_an_assignment_is_an_error(
    returned: Any,
) -> None:
    plan = _plan([_with_python(lambda *_args: returned)])
    with pytest.raises(TypeError, match="must return an Assignment"):
        plan.assign_running("u", {"id": "u"}, NOW)


def test_a_python_step_raising_propagates() -> None:
    def python(*_args: Any) -> Assignment:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        _plan([_with_python(python)]).assign_at(0, "u", {"id": "u"}, NOW)


def test_plan_methods_refuse_wrong_arguments() -> None:
    plan = _plan([_record(_config())])
    with pytest.raises(IndexError):
        plan.assign_at(1, "u", {}, NOW)
    with pytest.raises(TypeError):
        plan.assign_running("u", [], NOW)
    with pytest.raises(TypeError):
        plan.assign_running(1, {}, NOW)
    with pytest.raises(TypeError):
        plan.assign_running("u", {}, NOW, 1)


def _emptying(attributes: dict[str, Any], answer: bool = True) -> Callable[[Any], bool]:
    def condition(_value: Any) -> bool:
        attributes.clear()  # drops the last reference to the values C read from it
        return answer

    return condition


@pytest.mark.parametrize("layer", [None, LayerConfig("l", 0.0, 1.0)])
def test_a_condition_emptying_the_attributes_does_not_change_the_answer(
    layer: LayerConfig | None,
) -> None:
    configs = [_config("e1", layer=layer), _config("e2", layer=layer)]
    unit = "".join(["user-", "42"])  # a str only the attributes hold
    expected = Evaluator(configs, native=False).assign("x", {"id": unit}, now=NOW)
    attributes: dict[str, Any] = {"id": unit}
    del unit
    condition = _emptying(attributes)
    plan = _plan([_record(configs[0], condition), _record(configs[1], condition)])
    assert plan.assign_running("x", attributes, NOW) == expected


def test_a_fallback_emptying_the_attributes_does_not_change_the_answer() -> None:
    attributes: dict[str, Any] = {"k": "".join(["x", "y"])}
    empty = _emptying(attributes)
    never = _emptying(attributes, answer=False)
    value_node = (V_ALL, ((V_PY, empty), (V_STR, "xy", never)))
    program = native.Program((AND, ((PATH, "k", value_node, never),)))
    assert program(attributes) is True


class _Holder:
    program: Any = None


def _program_in_a_cycle() -> weakref.ref[_Holder]:
    holder = _Holder()

    def fallback(_value: Any) -> bool:
        return holder.program is not None

    holder.program = native.Program((AND, ((PATH, "k", (V_PY, fallback), fallback),)))
    assert holder.program({"k": 1}) is True
    return weakref.ref(holder)


def _plan_in_a_cycle() -> weakref.ref[_Holder]:
    holder = _Holder()

    def condition(_attributes: Any) -> bool:
        return holder.program is not None

    holder.program = _plan([_record(_config(), condition)])
    return weakref.ref(holder)


@pytest.mark.parametrize("make_cycle", [_program_in_a_cycle, _plan_in_a_cycle])
def test_programs_and_plans_in_reference_cycles_are_collected(
    make_cycle: Callable[[], weakref.ref[_Holder]],
) -> None:
    holder = make_cycle()
    assert holder() is not None and gc.is_tracked(holder().program)  # type: ignore[union-attr]
    gc.collect()
    assert holder() is None
