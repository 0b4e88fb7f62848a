"""The shape of a GrowthBook payload: JSON parsing and type checks naming JSON paths (pure).

A value of the wrong type is not something to skip: the payload is not what GrowthBook serves,
so the import is refused whole, with one violation on `payload_json` per problem, each
description starting with the JSON path (`features.f.rules[0].weights[1]: must be ...`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from verdict.limits import FIELD_LIMITS
from verdict_assignment.experiments.catalog_rules import MAX_GROUP_VALUES
from verdict_platform.errors import FieldViolation, InvalidArgument

FIELD = "payload_json"
"""The request field every violation names (the description gives the path inside the JSON)."""
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Largest payload accepted (ImportGrowthBookRequest.payload_json)."""
MAX_GROUP_VALUE_BYTES = FIELD_LIMITS["verdict.v1.SavedGroup.values"].max_bytes or 256
"""A saved group's value, as PutSavedGroup admits it."""
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


def parse_payload(text: str) -> Any:
    """The payload's JSON; InvalidArgument when too large or not JSON."""
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidArgument.of(FIELD, f"is {size} bytes; at most {MAX_PAYLOAD_BYTES} (4 MiB)")
    if not text.strip():
        raise InvalidArgument.of(FIELD, "is required: a GrowthBook SDK payload or features JSON")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_int)
    except ValueError as error:
        where = ""
        if isinstance(error, json.JSONDecodeError):
            where = f" at line {error.lineno} column {error.colno}"
            error_text = error.msg
        else:
            error_text = str(error)
        raise InvalidArgument.of(FIELD, f"is not valid JSON{where}: {error_text}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    """An integer literal as GrowthBook's JavaScript reads it when no double holds it: an
    infinity, which the finite-number checks then name (a Python int that large raised
    OverflowError wherever it met a float: INTERNAL)."""
    value = int(text)
    try:
        float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    return value


def path_of(parent: str, key: str) -> str:
    """`parent.key`, or `parent["key"]` when the key is not a plain name."""
    if _PLAIN_NAME.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def kind_of(value: Any) -> str:
    """A JSON value's kind, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return "an infinite number" if math.isinf(value) else "not a number"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


class Shape:
    """Collects the type violations of a payload as it is walked."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def bad(self, path: str, message: str) -> None:
        self.violations.append(FieldViolation(FIELD, f"{path or '(root)'}: {message}"))

    def want(self, value: Any, kind: type | tuple[type, ...], path: str, name: str) -> bool:
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if not ok:
            self.bad(path, f"must be {name}, not {kind_of(value)}")
        return ok

    def number(self, value: Any, path: str) -> bool:
        if not is_number(value) or not math.isfinite(value):
            self.bad(path, f"must be a finite number, not {kind_of(value)}")
            return False
        return True

    def string(self, value: Any, path: str) -> bool:
        return self.want(value, str, path, "a string")

    def experiment(self, raw: dict[str, Any], at: str) -> None:
        """The types of an experiment's (or experiment rule's) fields."""
        for name in ("hashAttribute", "fallbackAttribute", "seed", "name", "phase", "status"):
            if name in raw and raw[name] is not None:
                self.string(raw[name], f"{at}.{name}")
        for name in ("coverage", "hashVersion"):
            if name in raw:
                self.number(raw[name], f"{at}.{name}")
        for name in ("active", "disableStickyBucketing"):
            if name in raw:
                self.want(raw[name], bool, f"{at}.{name}", "a boolean")
        if "condition" in raw:
            self.want(raw["condition"], dict, f"{at}.condition", "an object")
        weights = raw.get("weights")
        if weights is not None and self.want(weights, list, f"{at}.weights", "a number array"):
            for i, w in enumerate(weights):
                self.number(w, f"{at}.weights[{i}]")
        if "meta" in raw and self.want(raw["meta"], list, f"{at}.meta", "an array of objects"):
            for i, m in enumerate(raw["meta"]):
                if self.want(m, dict, f"{at}.meta[{i}]", "an object"):
                    for name in ("key", "name"):
                        if name in m:
                            self.string(m[name], f"{at}.meta[{i}].{name}")
        if "ranges" in raw:
            self.ranges(raw["ranges"], f"{at}.ranges")
        if "namespace" in raw and raw["namespace"] is not None:
            ns = raw["namespace"]
            if (
                not isinstance(ns, list)
                or len(ns) != 3
                or not isinstance(ns[0], str)
                or not all(is_number(x) and math.isfinite(x) for x in ns[1:])
            ):
                self.bad(f"{at}.namespace", "must be [id, start, end]: a string, two numbers")
        if "filters" in raw and self.want(raw["filters"], list, f"{at}.filters", "an array"):
            for i, f in enumerate(raw["filters"]):
                where = f"{at}.filters[{i}]"
                if not self.want(f, dict, where, "an object"):
                    continue
                self.string(f.get("seed"), f"{where}.seed")
                self.ranges(f.get("ranges"), f"{where}.ranges")
                if f.get("attribute") is not None:
                    self.string(f["attribute"], f"{where}.attribute")
                if "hashVersion" in f:
                    self.number(f["hashVersion"], f"{where}.hashVersion")

    def ranges(self, value: Any, at: str) -> None:
        if not self.want(value, list, at, "an array of [start, end] pairs"):
            return
        for i, pair in enumerate(value):
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and all(is_number(x) and math.isfinite(x) for x in pair)
            ):
                self.bad(f"{at}[{i}]", "must be [start, end]: two numbers")

    def saved_groups(self, groups: dict[str, Any]) -> dict[str, list[Any]]:
        """The groups whose values are all scalars (the others are violations)."""
        valid = {}
        for key, values in groups.items():
            at = path_of("savedGroups", key)
            if not self.want(values, list, at, "an array of values"):
                continue
            ok = len(values) <= MAX_GROUP_VALUES
            if not ok:
                self.bad(at, f"has {len(values)} values; Verdict holds at most {MAX_GROUP_VALUES}")
            for i, value in enumerate(values):
                scalar = isinstance(value, str | bool) or (
                    is_number(value) and math.isfinite(value)
                )
                if not scalar:
                    self.bad(f"{at}[{i}]", f"must be a string or a number, not {kind_of(value)}")
                    ok = False
                elif isinstance(value, str) and (
                    len(value.encode()) > MAX_GROUP_VALUE_BYTES or "\x00" in value
                ):
                    self.bad(f"{at}[{i}]", f"must be at most {MAX_GROUP_VALUE_BYTES} bytes, no NUL")
                    ok = False
            if ok:
                valid[key] = values
        return valid
