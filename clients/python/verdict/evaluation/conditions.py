"""GrowthBook's MongoDB-style targeting conditions, compiled once into closures.

A condition is an object whose keys are attribute paths ("plan", "org.tier", "tags.0") or the
logical operators `$and`, `$or`, `$nor` (lists of conditions) and `$not` (one condition); every
key must hold. A path's condition is either a literal (compared as GrowthBook does: a string
against the value read as a string, a number against the value read as a number, arrays and
objects by their JSON) or an object of operators, all of which must hold:
`$eq $ne $lt $lte $gt $gte $in $nin $ini $nini $all $alli $elemMatch $size $exists $type $not
$regex $regexi $veq $vne $vgt $vgte $vlt $vlte $inGroup $notInGroup`. The semantics are those of
the reference JavaScript SDK, including its coercions (see `jsvalues`).

`compile_condition` does the per-condition work once (paths split, regexes compiled, lists made
into sets, versions padded, saved groups resolved); `evaluate_condition` is compile-then-call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from verdict.evaluation.jsvalues import (
    ARRAY_TYPES,
    CONTAINER_TYPES,
    stringify,
    to_number,
    to_string,
    truthy,
)
from verdict.evaluation.operators import (
    ValuePredicate,
    compile_leaf_operator,
    compile_membership,
    never,
)

CompiledCondition = Callable[[Mapping[str, Any]], bool]
SavedGroups = Mapping[str, Sequence[Any]]

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class ConditionError(ValueError):
    """The condition is not one: not an object, or a logical operator with a malformed operand.

    Malformed operator arguments (a `$in` that is not a list, an invalid regex) and unknown
    operators are not errors: as in GrowthBook they simply never match.
    """


def compile_condition(
    condition: Mapping[str, Any], saved_groups: SavedGroups | None = None
) -> CompiledCondition:
    """Compile `condition` into a predicate on attributes; raises ConditionError if malformed.

    `saved_groups` (group id -> list of values) is resolved now, for `$inGroup`/`$notInGroup`.
    """
    if not isinstance(condition, Mapping):
        raise ConditionError(f"a condition is an object, not {type(condition).__name__}")
    return Compiler(saved_groups or {}).condition(condition)


def evaluate_condition(
    condition: Mapping[str, Any],
    attributes: Mapping[str, Any],
    saved_groups: SavedGroups | None = None,
) -> bool:
    """Whether `attributes` satisfy `condition` (GrowthBook's `evalCondition`).

    Compiles on every call; compile once with `compile_condition` to evaluate many times.
    """
    return compile_condition(condition, saved_groups)(attributes)


def get_path(obj: Any, parts: Sequence[str]) -> Any:
    """The value at a dotted path, or None (GrowthBook's `getPath`); arrays take indexes."""
    current = obj
    for part in parts:
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, ARRAY_TYPES):
            if part == "length":
                current = len(current)
            elif _ARRAY_INDEX.fullmatch(part) and int(part) < len(current):
                current = current[int(part)]
            else:
                return None
        else:
            return None
    return current


def is_operator_object(value: Any) -> bool:
    """Whether `value` is a non-empty object whose keys all start with "$"."""
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(key, str) and key.startswith("$") for key in value)
    )


def _always(_obj: Any) -> bool:
    return True


def _all_of(predicates: Sequence[ValuePredicate]) -> ValuePredicate:
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda obj: first(obj) and second(obj)
    if len(predicates) == 3:  # the usual targeting rule (e.g. country, plan, app version)
        first, second, third = predicates
        return lambda obj: first(obj) and second(obj) and third(obj)
    ordered = tuple(predicates)

    def all_of(obj: Any) -> bool:
        for predicate in ordered:  # noqa: SIM110 - a loop, not a generator, on the hot path
            if not predicate(obj):
                return False
        return True

    return all_of


def _any_of(predicates: Sequence[ValuePredicate]) -> ValuePredicate:
    if not predicates:  # GrowthBook: an empty $or holds (and so an empty $nor fails)
        return _always
    ordered = tuple(predicates)

    def any_of(obj: Any) -> bool:
        for predicate in ordered:  # noqa: SIM110 - a loop, not a generator, on the hot path
            if predicate(obj):
                return True
        return False

    return any_of


def _negate(predicate: ValuePredicate) -> ValuePredicate:
    return lambda value: not predicate(value)


def at_path(path: str, predicate: ValuePredicate) -> ValuePredicate:
    parts = tuple(path.split("."))
    if len(parts) == 1:

        def at_key(obj: Any) -> bool:
            if type(obj) is dict:
                return predicate(obj.get(path))
            return predicate(get_path(obj, parts))

        return at_key
    return lambda obj: predicate(get_path(obj, parts))


class Compiler:
    """Compiles conditions with one set of saved groups."""

    def __init__(self, saved_groups: SavedGroups) -> None:
        self.saved_groups = saved_groups

    def condition(self, condition: Mapping[str, Any]) -> ValuePredicate:
        predicates: list[ValuePredicate] = []
        for key, argument in condition.items():
            if key == "$or":
                predicates.append(_any_of(self._conditions(key, argument)))
            elif key == "$nor":
                predicates.append(_negate(_any_of(self._conditions(key, argument))))
            elif key == "$and":
                predicates.append(_all_of(self._conditions(key, argument)))
            elif key == "$not":
                if not isinstance(argument, Mapping):
                    raise ConditionError("$not takes a condition object")
                predicates.append(_negate(self.condition(argument)))
            elif isinstance(key, str):
                predicates.append(at_path(key, self.value(argument)))
            else:
                raise ConditionError(f"attribute paths are strings, not {key!r}")
        return _all_of(predicates)

    def _conditions(self, operator: str, argument: Any) -> list[ValuePredicate]:
        if not isinstance(argument, ARRAY_TYPES) or not all(
            isinstance(item, Mapping) for item in argument
        ):
            raise ConditionError(f"{operator} takes a list of condition objects")
        return [self.condition(item) for item in argument]

    def value(self, expected: Any, *, fold: bool = False) -> ValuePredicate:
        """The predicate of one path's condition (a literal or an operator object)."""
        if isinstance(expected, str):
            if fold:
                lowered = expected.lower()
                return lambda actual: to_string(actual).lower() == lowered
            return lambda actual: (actual if type(actual) is str else to_string(actual)) == expected
        if isinstance(expected, bool):
            return lambda actual: actual is not None and truthy(actual) is expected
        if isinstance(expected, int | float):
            number = to_number(expected)
            return lambda actual: (actual if type(actual) is float else to_number(actual)) == number
        if expected is None:
            return lambda actual: actual is None
        if is_operator_object(expected):
            return _all_of([self.operator(op, arg) for op, arg in expected.items()])
        if isinstance(expected, CONTAINER_TYPES):
            literal = stringify(expected)
            return lambda actual: stringify(actual) == literal
        raise ConditionError(f"unsupported condition value of type {type(expected).__name__}")

    def operator(self, op: str, argument: Any) -> ValuePredicate:
        if op == "$not":
            return _negate(self.value(argument))
        if op == "$size":
            length_matches = self.value(argument)
            return lambda actual: isinstance(actual, ARRAY_TYPES) and length_matches(len(actual))
        if op == "$elemMatch":
            return self._elem_match(argument)
        if op in ("$all", "$alli"):
            return self._all(argument, fold=op == "$alli")
        if op in ("$inGroup", "$notInGroup"):
            group_id = argument if isinstance(argument, str) else to_string(argument)
            group = self.saved_groups.get(group_id)
            members = group if isinstance(group, ARRAY_TYPES) else []
            return compile_membership(members, negate=op == "$notInGroup")
        return compile_leaf_operator(op, argument)

    def _elem_match(self, argument: Any) -> ValuePredicate:
        if is_operator_object(argument):
            check = self.value(argument)
        elif isinstance(argument, Mapping):
            check = self.condition(argument)
        else:
            return never

        def elem_match(actual: Any) -> bool:
            if not isinstance(actual, ARRAY_TYPES):
                return False
            # GrowthBook skips falsy elements (0, "", false, null).
            return any(truthy(item) and check(item) for item in actual)

        return elem_match

    def _all(self, argument: Any, *, fold: bool) -> ValuePredicate:
        if not isinstance(argument, ARRAY_TYPES):
            return never
        wanted = tuple(self.value(item, fold=fold) for item in argument)

        def contains_all(actual: Any) -> bool:
            if not isinstance(actual, ARRAY_TYPES):
                return False
            return all(any(matches(item) for item in actual) for matches in wanted)

        return contains_all
