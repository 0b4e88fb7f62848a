"""Strict validation of a targeting condition, for conditions being written.

`compile_condition` keeps GrowthBook's lenient semantics (an unknown operator or a malformed
argument never matches), which conditions already stored rely on. A condition being written is
held to more: whatever would silently target no one (or everyone) is a problem reported with the
path of the offending node, so that the experiment is refused instead.

Paths name the node from the condition's root: object keys joined by ".", list positions in
brackets, e.g. `country.$in`, `$and[1].email.$regex`. Attribute paths appear as written (the key
`org.tier` gives `org.tier.$eq`), and the root itself is the empty path.

Depth counts JSON levels: the condition object is level 1, and every object or list inside one
adds a level (`{"a": {"$in": [1]}}` has 3). MAX_CONDITION_DEPTH (10) is about twice what
GrowthBook's conditions use, and stays well below protobuf's recursion limit of 100 message
levels once the condition travels in a `google.protobuf.Struct` (two message levels per JSON
level, plus the messages around it, e.g. in the audit log).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from verdict.evaluation.jsvalues import ARRAY_TYPES, is_number
from verdict.evaluation.regex import RegexError, compile_js_regex

MAX_CONDITION_DEPTH = 10
"""Deepest JSON nesting of a condition written to the platform (the condition is level 1)."""

TYPE_NAMES = frozenset(("string", "number", "boolean", "array", "object", "null"))
"""The values `$type` compares with (GrowthBook's `getType`)."""

_LOGICAL = ("$and", "$or", "$nor")
_RELATIONS = frozenset(("$lt", "$lte", "$gt", "$gte"))
_VERSIONS = frozenset(("$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"))
_MEMBERSHIP = frozenset(("$in", "$nin", "$ini", "$nini"))


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """One thing wrong with a condition."""

    path: str
    """Where, from the condition's root (see the module's documentation); "" for the root."""
    message: str
    """What is wrong, for a person."""


def validate_condition(
    condition: Any,
    *,
    known_groups: Collection[str] | None = None,
    max_depth: int = MAX_CONDITION_DEPTH,
) -> list[ConditionProblem]:
    """Every problem of `condition`, in document order; empty when it is well-formed.

    `known_groups`, when given, are the saved groups `$inGroup`/`$notInGroup` may name.
    """
    checker = _Checker(known_groups, max_depth)
    if not isinstance(condition, Mapping):
        checker.add("", f"a condition is an object, not {_kind(condition)}")
    else:
        checker.condition(condition, "", 1)
    return checker.problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, ARRAY_TYPES):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or is_number(value)


def _is_operator_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("$")


class _Checker:
    def __init__(self, known_groups: Collection[str] | None, max_depth: int) -> None:
        self.known_groups = known_groups
        self.max_depth = max_depth
        self.problems: list[ConditionProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(ConditionProblem(path, message))

    def _too_deep(self, path: str, level: int) -> bool:
        if level <= self.max_depth:
            return False
        self.add(path, f"nested deeper than {self.max_depth} levels")
        return True

    def condition(self, condition: Mapping[Any, Any], path: str, level: int) -> None:
        """An object whose keys are attribute paths and logical operators."""
        if self._too_deep(path, level):
            return
        for key, argument in condition.items():
            at = _join(path, str(key))
            if not isinstance(key, str):
                self.add(at, "attribute paths are strings")
            elif key in _LOGICAL:
                self._conditions(argument, at, level + 1)
            elif key == "$not":
                if isinstance(argument, Mapping):
                    self.condition(argument, at, level + 1)
                else:
                    self.add(at, f"takes a condition object, not {_kind(argument)}")
            else:  # an attribute path; GrowthBook reads "$groups" as one too
                self.value(argument, at, level + 1)

    def _conditions(self, argument: Any, path: str, level: int) -> None:
        if not isinstance(argument, ARRAY_TYPES):
            self.add(path, f"takes an array of condition objects, not {_kind(argument)}")
            return
        if self._too_deep(path, level):
            return
        for i, item in enumerate(argument):
            if isinstance(item, Mapping):
                self.condition(item, f"{path}[{i}]", level + 1)
            else:
                self.add(f"{path}[{i}]", f"must be a condition object, not {_kind(item)}")

    def value(self, expected: Any, path: str, level: int) -> None:
        """One attribute's condition: a literal, or an object of operators."""
        if isinstance(expected, Mapping) and expected:
            operators = [key for key in expected if _is_operator_key(key)]
            if len(operators) == len(expected):
                if not self._too_deep(path, level):
                    for op, argument in expected.items():
                        self.operator(op, argument, _join(path, op), level + 1)
                return
            if operators:
                self.add(path, f"mixes operators ({', '.join(operators)}) with plain keys")
                return
        self._literal(expected, path, level)

    def _literal(self, value: Any, path: str, level: int) -> None:
        """A value compared as it is: only its depth can be wrong."""
        if _is_scalar(value):
            return
        if not isinstance(value, Mapping | list | tuple):
            self.add(path, f"{_kind(value)} is no JSON value")
            return
        if self._too_deep(path, level):
            return
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            at = f"{path}[{key}]" if isinstance(key, int) else _join(path, str(key))
            self._literal(item, at, level + 1)

    def operator(self, op: str, argument: Any, path: str, level: int) -> None:
        """One operator of an operator object and its argument."""
        if op in ("$eq", "$ne"):
            if not _is_scalar(argument):
                self.add(path, f"takes a string, number, boolean or null, not {_kind(argument)}")
        elif op in _RELATIONS:
            if not (isinstance(argument, str) or is_number(argument)):
                self.add(path, f"takes a number or a string, not {_kind(argument)}")
        elif op in _VERSIONS:
            if not isinstance(argument, str):
                self.add(path, f"takes a version string, not {_kind(argument)}")
        elif op in _MEMBERSHIP:
            self._members(argument, path, level)
        elif op in ("$all", "$alli"):
            self._all(argument, path, level)
        elif op in ("$regex", "$regexi"):
            self._regex(argument, path, insensitive=op == "$regexi")
        elif op == "$exists":
            if not isinstance(argument, bool):
                self.add(path, f"takes true or false, not {_kind(argument)}")
        elif op == "$type":
            if argument not in TYPE_NAMES:
                self.add(path, f"takes one of {', '.join(sorted(TYPE_NAMES))}")
        elif op == "$size":
            self._size(argument, path, level)
        elif op == "$elemMatch":
            self._elem_match(argument, path, level)
        elif op == "$not":
            if isinstance(argument, Mapping):
                self.value(argument, path, level)
            else:
                self.add(path, f"takes an object, not {_kind(argument)}")
        elif op in ("$inGroup", "$notInGroup"):
            self._group(argument, path)
        else:
            self.add(path, f"unknown operator {op}")

    def _members(self, argument: Any, path: str, level: int) -> None:
        if not isinstance(argument, ARRAY_TYPES):
            self.add(path, f"takes an array, not {_kind(argument)}")
            return
        if self._too_deep(path, level):
            return
        for i, item in enumerate(argument):
            if not _is_scalar(item):
                message = f"must be a string, number, boolean or null, not {_kind(item)}"
                self.add(f"{path}[{i}]", message)

    def _all(self, argument: Any, path: str, level: int) -> None:
        if not isinstance(argument, ARRAY_TYPES):
            self.add(path, f"takes an array, not {_kind(argument)}")
            return
        if self._too_deep(path, level):
            return
        for i, item in enumerate(argument):
            self.value(item, f"{path}[{i}]", level + 1)

    def _regex(self, argument: Any, path: str, *, insensitive: bool) -> None:
        try:
            compile_js_regex(argument, insensitive=insensitive)
        except RegexError as error:
            self.add(path, f"is not a valid regular expression: {error}")

    def _size(self, argument: Any, path: str, level: int) -> None:
        if is_number(argument):
            return
        if isinstance(argument, Mapping) and argument and all(map(_is_operator_key, argument)):
            self.value(argument, path, level)
        else:
            self.add(path, f"takes a number or an operator object, not {_kind(argument)}")

    def _elem_match(self, argument: Any, path: str, level: int) -> None:
        if not isinstance(argument, Mapping):
            self.add(path, f"takes an object, not {_kind(argument)}")
        elif argument and all(map(_is_operator_key, argument)):
            self.value(argument, path, level)  # operators on each element
        else:
            self.condition(argument, path, level)  # a condition on each element (an object)

    def _group(self, argument: Any, path: str) -> None:
        if not isinstance(argument, str):
            self.add(path, f"takes a saved group key, not {_kind(argument)}")
        elif self.known_groups is not None and argument not in self.known_groups:
            self.add(path, f"names no saved group ({argument!r})")
