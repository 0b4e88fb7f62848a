"""The condition language's leaf operators, compiled once into predicates on one value.

Each `compile_*` function takes an operator's argument from the condition and returns a predicate
on the attribute value (None when the attribute is missing). Work that depends only on the
argument (regex compilation by RE2, version padding, set building) happens here, once. An
argument of the wrong kind (a `$in` that is not a list, an invalid regex) and an unknown operator
give a predicate that never matches, as in GrowthBook; `validation` refuses them on write.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Hashable
from typing import Any

from verdict.evaluation.jsvalues import (
    ARRAY_TYPES,
    compare,
    is_number,
    strict_equal,
    to_number,
    to_string,
    truthy,
    type_of,
)
from verdict.evaluation.regex import JsRegex, RegexError, compile_js_regex
from verdict.evaluation.versions import pad_version, padded_version_string

ValuePredicate = Callable[[Any], bool]

_MAX_EXACT_INT = 2**53
_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}
_VERSION_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "$veq": operator.eq,
    "$vne": operator.ne,
    "$vgt": operator.gt,
    "$vgte": operator.ge,
    "$vlt": operator.lt,
    "$vlte": operator.le,
}


def never(_value: Any) -> bool:
    """The predicate of a malformed argument or an unknown operator."""
    return False


def compile_relation(op: str, expected: Any) -> ValuePredicate:
    """`$lt`, `$lte`, `$gt`, `$gte` with JavaScript's coercions ("8" > 5, null < 1)."""
    relation = _RELATIONS[op]
    expected_number = to_number(expected) if is_number(expected) else None
    plain_string = isinstance(expected, str) and expected.isascii()

    def related(actual: Any) -> bool:
        kind = type(actual)
        if expected_number is not None and (
            kind is float or (kind is int and -_MAX_EXACT_INT <= actual <= _MAX_EXACT_INT)
        ):
            return relation(actual, expected_number)
        if plain_string and kind is str and actual.isascii():
            return relation(actual, expected)
        order = compare(actual, expected)
        return order is not None and relation(order, 0)

    return related


def compile_version_relation(op: str, expected: Any) -> ValuePredicate:
    """`$veq`, `$vne`, `$vgt`, `$vgte`, `$vlt`, `$vlte` on padded version strings."""
    relation = _VERSION_RELATIONS[op]
    padded = padded_version_string(expected)

    def version_related(actual: Any) -> bool:
        if type(actual) is str and actual:
            return relation(pad_version(actual), padded)
        return relation(padded_version_string(actual), padded)

    return version_related


def compile_equality(expected: Any, *, negate: bool) -> ValuePredicate:
    """`$eq` / `$ne`: JavaScript's `===` (no coercion; arrays and objects never equal)."""
    if type(expected) is str:
        return lambda actual: (type(actual) is str and actual == expected) is not negate
    return lambda actual: strict_equal(actual, expected) is not negate


def compile_exists(expected: Any) -> ValuePredicate:
    """`$exists`: true asks for a non-null value, false for null or missing."""
    if truthy(expected):
        return lambda actual: actual is not None
    return lambda actual: actual is None


def compile_type(expected: Any) -> ValuePredicate:
    """`$type`: "string", "number", "boolean", "array", "object" or "null"."""
    return lambda actual: type_of(actual) == expected


def _member_key(value: Any, *, fold: bool) -> Hashable | None:
    """A key equal for two values exactly when `includes` finds one with the other.

    Strings key as themselves, other primitives as tagged tuples (so 1, "1" and True differ while
    1 and 1.0 agree). Arrays and objects compare by reference in JavaScript: a condition's never
    equals an attribute's, so they have no key. With `fold` (`$ini`), strings are lower-cased and
    NaN equals nothing, as `===` has it; without, NaN finds NaN, as `includes` has it.
    """
    if isinstance(value, str):
        return value.lower() if fold else value
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        number = to_number(value)
        if math.isnan(number):
            return None if fold else ("number", "NaN")
        return ("number", number)
    if value is None:
        return ("null",)
    return None


def membership_keys(expected: Any, *, fold: bool = False) -> frozenset[Hashable] | None:
    """The `_member_key`s of a membership operator's list; None when the argument is no list."""
    if not isinstance(expected, ARRAY_TYPES):
        return None
    return frozenset(key for item in expected if (key := _member_key(item, fold=fold)) is not None)


def compile_membership(expected: Any, *, negate: bool, fold: bool = False) -> ValuePredicate:
    """`$in`, `$nin`, `$ini`, `$nini`, and saved groups: an array attribute matches when any of
    its elements is in the list. An argument that is not a list never matches, even for `$nin`.
    """
    keys = membership_keys(expected, fold=fold)
    if keys is None:
        return never

    def member(actual: Any) -> bool:
        if type(actual) is str and not fold:
            return (actual in keys) is not negate
        if isinstance(actual, ARRAY_TYPES):
            found = any(
                key is not None and key in keys
                for key in (_member_key(item, fold=fold) for item in actual)
            )
            return found is not negate
        key = _member_key(actual, fold=fold)
        return (key is not None and key in keys) is not negate

    return member


def regex_of(expected: Any, *, insensitive: bool) -> JsRegex | None:
    """The compiled pattern (RE2, see `regex`); None when `expected` is no string or no pattern
    RE2 can match (backreferences, lookaround)."""
    try:
        return compile_js_regex(expected, insensitive=insensitive)
    except RegexError:
        return None


def compile_regex(expected: Any, *, insensitive: bool) -> ValuePredicate:
    """`$regex` / `$regexi`: a search anywhere in the value read as a string (`RegExp.test`)."""
    regex = regex_of(expected, insensitive=insensitive)
    if regex is None:
        return never
    test = regex.test
    return lambda actual: test(actual if type(actual) is str else to_string(actual))


def compile_leaf_operator(op: str, expected: Any) -> ValuePredicate:
    """The predicate of a non-recursive operator; `never` for an unknown one."""
    if op in _RELATIONS:
        return compile_relation(op, expected)
    if op in _VERSION_RELATIONS:
        return compile_version_relation(op, expected)
    if op in ("$eq", "$ne"):
        return compile_equality(expected, negate=op == "$ne")
    if op in ("$in", "$nin", "$ini", "$nini"):
        return compile_membership(expected, negate=op.startswith("$nin"), fold=op.endswith("i"))
    if op in ("$regex", "$regexi"):
        return compile_regex(expected, insensitive=op == "$regexi")
    if op == "$exists":
        return compile_exists(expected)
    if op == "$type":
        return compile_type(expected)
    return never
