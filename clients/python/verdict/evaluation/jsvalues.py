"""JavaScript value semantics, which GrowthBook's condition language is defined in.

The reference implementation (GrowthBook's JavaScript SDK) compares attribute values with
JavaScript's operators: `value + ""`, `value * 1`, `===`, `<`, `Array.prototype.includes` and
`JSON.stringify`. Other SDKs approximate them differently; these helpers reproduce them for JSON
values (None, bool, int, float, str, list/tuple, mappings) so that every edge case (1 vs "1" vs
True, `"8" > 5`, `null < 1`) is decided as the reference decides it. A missing attribute is None,
as GrowthBook's `getPath` returns `null` for it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

ARRAY_TYPES = (list, tuple)
CONTAINER_TYPES = (list, tuple, Mapping)

# StringNumericLiteral of ECMAScript (decimal part); hex/octal/binary forms are handled apart.
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_RADIX = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_MAX_ARRAY_INDEX = 2**32 - 2
_MAX_EXACT_INT = 2**53  # below it, a double's shortest digits are the integer's own


def is_number(value: Any) -> bool:
    """Whether `typeof value === "number"` (bool is not a number, unlike in Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def type_of(value: Any) -> str:
    """GrowthBook's `getType`: "null", "boolean", "number", "string", "array" or "object"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, ARRAY_TYPES):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "unknown"


def truthy(value: Any) -> bool:
    """JavaScript truthiness: empty arrays and objects are true, NaN is false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | int | float):
        return bool(value) and value == value
    return True


def number_to_string(x: float) -> str:
    """ECMAScript Number::toString: 1.0 -> "1", 1e21 -> "1e+21", 1e-7 -> "1e-7"."""
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < _MAX_EXACT_INT:
        return str(int(x))
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    e = point - 1
    body = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{body}e{'+' if e >= 0 else '-'}{abs(e)}"


def to_string(value: Any) -> str:
    """ECMAScript ToString (`value + ""`): arrays join with ",", objects are "[object Object]"."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_EXACT_INT else number_to_string(_int_to_float(value))
    if isinstance(value, float):
        return number_to_string(value)
    if isinstance(value, ARRAY_TYPES):
        return ",".join("" if item is None else to_string(item) for item in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _int_to_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def string_to_number(text: str) -> float:
    """ECMAScript StringToNumber: "" -> 0, " 8 " -> 8, "0x1f" -> 31, anything else -> NaN."""
    text = text.strip()
    if not text:
        return 0.0
    base = _RADIX.get(text[:2])
    if base is not None:
        try:
            return _int_to_float(int(text[2:], base)) if text[2:].isalnum() else math.nan
        except ValueError:
            return math.nan
    if _DECIMAL.fullmatch(text) is None:
        return math.nan
    return float(text.replace("Infinity", "inf"))


def to_number(value: Any) -> float:
    """ECMAScript ToNumber (`value * 1`): None -> 0, True -> 1, "8" -> 8, objects -> NaN."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return _int_to_float(value)
    if isinstance(value, float):
        return value
    if value is None:
        return 0.0
    if isinstance(value, str):
        return string_to_number(value)
    if isinstance(value, ARRAY_TYPES):
        return string_to_number(to_string(value))
    return math.nan


def strict_equal(a: Any, b: Any) -> bool:
    """`a === b`: same type and value for primitives; arrays and objects only to themselves."""
    if is_number(a):
        return is_number(b) and a == b
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    return a is b


def _utf16(text: str) -> str | bytes:
    return text if text.isascii() else text.encode("utf-16-be")


def compare(a: Any, b: Any) -> int | None:
    """JavaScript's relational comparison: -1, 0 or 1, or None when undefined (NaN involved).

    Two strings compare by UTF-16 code units; anything else compares as numbers (ToNumber after
    ToPrimitive), so `"8" > 5`, `8 > "5"` and `null < 1` hold as in JavaScript.
    """
    if isinstance(a, CONTAINER_TYPES):
        a = to_string(a)
    if isinstance(b, CONTAINER_TYPES):
        b = to_string(b)
    if isinstance(a, str) and isinstance(b, str):
        ua, ub = _utf16(a), _utf16(b)
        if type(ua) is not type(ub):
            ua, ub = a.encode("utf-16-be"), b.encode("utf-16-be")
        return (ua > ub) - (ua < ub)  # type: ignore[operator]
    x, y = to_number(a), to_number(b)
    if x != x or y != y:
        return None
    return (x > y) - (x < y)


def _key_order(key: str) -> tuple[int, int]:
    if _ARRAY_INDEX.fullmatch(key) and int(key) <= _MAX_ARRAY_INDEX:
        return (0, int(key))
    return (1, 0)


def stringify(value: Any) -> str:
    """`JSON.stringify(value)`, including JavaScript's key order (integer-like keys first)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = _int_to_float(value) if isinstance(value, int) else value
        return number_to_string(number) if math.isfinite(number) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, ARRAY_TYPES):
        return "[" + ",".join(stringify(item) for item in value) + "]"
    if isinstance(value, Mapping):
        keys = sorted((str(k) for k in value), key=_key_order)  # stable: insertion order kept
        by_str = {str(k): v for k, v in value.items()}
        items = (json.dumps(k, ensure_ascii=False) + ":" + stringify(by_str[k]) for k in keys)
        return "{" + ",".join(items) + "}"
    return json.dumps(str(value), ensure_ascii=False)
