"""Targeting conditions lowered for the compiled accelerator (`_native.Program`).

`lower_condition` turns a condition into nested tuples, one per node, that `_native.c` compiles
into a tree it evaluates without calling Python for the common cases: an attribute read from a
dict; a literal string, number, boolean or null; `$eq`/`$ne` on strings; `$in`/`$nin` on
strings; numeric and ASCII relations; `$v*` versions; `$regex`; `$exists`; and the logical
operators. Each node that does not decide every value itself carries the closure `conditions`
compiled for the same part of the condition (its "fallback"), and the C code calls it for any
value it does not handle (another type, an attributes object that is not a dict, a nested path).
So the closures remain the one description of the semantics: the C code only decides what they
would decide the same way, which the tests check on random conditions and attributes and on
GrowthBook's cases.

Node layouts (the first item is the opcode; see `_native.c`, `parse_node`):

    on the attributes object          on one attribute value
    (AND, (node, ...))                (V_ALL, (node, ...))          (V_NOT, node)
    (OR, (node, ...))                 (V_PY, fallback)              (V_NULL,)
    (NOT, node)                       (V_STR, str, fallback)        (V_BOOL, bool, fallback)
    (PATH, key, node, fallback)       (V_NUM, float, fallback)      (V_EQ_STR, str, negate)
    (OBJ_PY, fallback)                (V_IN_STR, frozenset, negate, fallback)
                                      (V_REL, op, float | None, str | None, fallback)
                                      (V_VREL, op, padded, pad_version, fallback)
                                      (V_REGEX, test, fallback)     (V_EXISTS, bool)

`op` is a rich-comparison code as CPython numbers them (Py_LT=0 ... Py_GE=5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from verdict.evaluation.conditions import Compiler, SavedGroups, at_path, is_operator_object
from verdict.evaluation.jsvalues import ARRAY_TYPES, is_number, to_number, truthy
from verdict.evaluation.operators import membership_keys, regex_of
from verdict.evaluation.versions import pad_version, padded_version_string

AND, OR, NOT, PATH, OBJ_PY = 1, 2, 3, 4, 5
V_ALL, V_NOT, V_PY, V_STR, V_BOOL, V_NUM, V_NULL = 10, 11, 12, 13, 14, 15, 16
V_EQ_STR, V_IN_STR, V_REL, V_VREL, V_REGEX, V_EXISTS = 17, 18, 19, 20, 21, 22

_LT, _LE, _EQ, _NE, _GT, _GE = range(6)
_RELATION_CODES = {"$lt": _LT, "$lte": _LE, "$gt": _GT, "$gte": _GE}
_VERSION_CODES = {"$veq": _EQ, "$vne": _NE, "$vgt": _GT, "$vgte": _GE, "$vlt": _LT, "$vlte": _LE}

Node = tuple[Any, ...]


def lower_condition(condition: Mapping[str, Any], saved_groups: SavedGroups | None = None) -> Node:
    """The program of a condition that `compile_condition` accepts (it is not checked again)."""
    return _Lowering(Compiler(saved_groups or {})).condition(condition)


class _Lowering:
    """Mirrors `conditions.Compiler`, node for closure."""

    def __init__(self, compiler: Compiler) -> None:
        self._compiler = compiler

    def condition(self, condition: Mapping[str, Any]) -> Node:
        nodes: list[Node] = []
        for key, argument in condition.items():
            if key == "$or":
                nodes.append((OR, tuple(self.condition(item) for item in argument)))
            elif key == "$nor":
                nodes.append((NOT, (OR, tuple(self.condition(item) for item in argument))))
            elif key == "$and":
                nodes.append((AND, tuple(self.condition(item) for item in argument)))
            elif key == "$not":
                nodes.append((NOT, self.condition(argument)))
            else:
                fallback = at_path(key, self._compiler.value(argument))
                if "." in key:
                    nodes.append((OBJ_PY, fallback))
                else:
                    nodes.append((PATH, key, self.value(argument), fallback))
        return (AND, tuple(nodes))

    def value(self, expected: Any) -> Node:
        fallback = self._compiler.value(expected)
        if isinstance(expected, str):
            return (V_STR, expected, fallback)
        if isinstance(expected, bool):
            return (V_BOOL, expected, fallback)
        if isinstance(expected, int | float):
            return (V_NUM, to_number(expected), fallback)
        if expected is None:
            return (V_NULL,)
        if is_operator_object(expected):
            return (V_ALL, tuple(self._operator(op, arg) for op, arg in expected.items()))
        return (V_PY, fallback)

    def _operator(self, op: str, argument: Any) -> Node:
        if op == "$not":
            return (V_NOT, self.value(argument))
        fallback = self._compiler.operator(op, argument)
        if op in _RELATION_CODES:
            number = to_number(argument) if is_number(argument) else None
            plain = argument if isinstance(argument, str) and argument.isascii() else None
            return (V_REL, _RELATION_CODES[op], number, plain, fallback)
        if op in _VERSION_CODES:
            padded = padded_version_string(argument)
            return (V_VREL, _VERSION_CODES[op], padded, pad_version, fallback)
        if op in ("$eq", "$ne") and type(argument) is str:
            return (V_EQ_STR, argument, op == "$ne")
        members = argument
        if op in ("$inGroup", "$notInGroup") and isinstance(argument, str):
            group = self._compiler.saved_groups.get(argument)
            members = group if isinstance(group, ARRAY_TYPES) else []
        elif op not in ("$in", "$nin"):
            members = None
        keys = None if members is None else membership_keys(members)
        if keys is not None:
            return (V_IN_STR, keys, op in ("$nin", "$notInGroup"), fallback)
        if op == "$regex":
            regex = regex_of(argument, insensitive=False)
            if regex is not None:
                return (V_REGEX, regex.test, fallback)
        if op == "$exists":
            return (V_EXISTS, truthy(argument))
        return (V_PY, fallback)
