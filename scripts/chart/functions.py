"""The Helm and Sprig functions the Verdict chart uses, with their Go behaviour: `toYaml` trims
its last newline, `indent` pads every line, `default` replaces any empty value, `printf "%d"` of a
float64 prints Go's `%!d(float64=...)` (so a template that forgets `int` shows it here too)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import yaml

from .execute import Function, go_print, truthy
from .gotemplate import TemplateError


def _plain(value: Any) -> Any:
    """Values as sigs.k8s.io/yaml writes them: integral float64s without a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.safe_dump(_plain(value), sort_keys=True, default_flow_style=False, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...")


def to_json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def indent(spaces: int, text: str) -> str:
    pad = " " * int(spaces)
    return pad + text.replace("\n", "\n" + pad)


def _go_quote(text: str) -> str:
    if any(not c.isprintable() and c not in "\n\t\r" for c in text):
        raise TemplateError("quoting unprintable characters is outside the supported subset")
    return json.dumps(text, ensure_ascii=False)


def quote(*values: Any) -> str:
    return " ".join(_go_quote(go_print(v)) for v in values if v is not None)


def printf(template: str, *args: Any) -> str:
    values = iter(args)

    def one(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        value = next(values)
        if verb == "d":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            kind = "float64" if isinstance(value, float) else type(value).__name__
            return f"%!d({kind}={go_print(value)})"
        if verb == "q":
            return _go_quote(go_print(value))
        return go_print(value)

    return re.sub(r"%([sdvq%])", one, template)


def _comparable(a: Any, b: Any) -> None:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and type(a) is not type(b):
        raise TemplateError(f"incompatible types for comparison: {a!r} and {b!r}")


def eq(a: Any, *others: Any) -> bool:
    for b in others:
        _comparable(a, b)
    return any(a == b for b in others)


def ne(a: Any, b: Any) -> bool:
    _comparable(a, b)
    return bool(a != b)


def required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(message)
    return value


def fail(message: str) -> Any:
    raise TemplateError(message)


def to_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value) if re.fullmatch(r"-?\d+", value) else 0
    return int(value or 0)


def dict_of(*pairs: Any) -> dict[str, Any]:
    if len(pairs) % 2:
        raise TemplateError("dict needs key/value pairs")
    return {str(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}


def trunc(length: int, text: str) -> str:
    n = int(length)
    return text[:n] if n >= 0 else text[n:]


FUNCTIONS: dict[str, Function] = {
    "toYaml": to_yaml,
    "toJson": to_json,
    "indent": indent,
    "nindent": lambda spaces, text: "\n" + indent(spaces, text),
    "quote": quote,
    "printf": printf,
    "default": lambda fallback, value=None: value if truthy(value) else fallback,
    "required": required,
    "fail": fail,
    "empty": lambda value: not truthy(value),
    "not": lambda value: not truthy(value),
    "eq": eq,
    "ne": ne,
    "gt": lambda a, b: (_comparable(a, b), a > b)[1],
    "lt": lambda a, b: (_comparable(a, b), a < b)[1],
    "int": to_int,
    "add": lambda *numbers: sum(to_int(n) for n in numbers),
    "toString": go_print,
    "b64enc": lambda text: base64.b64encode(go_print(text).encode()).decode(),
    "sha256sum": lambda text: hashlib.sha256(text.encode()).hexdigest(),
    "trunc": trunc,
    "trimSuffix": lambda suffix, text: text.removesuffix(suffix),
    "lower": lambda text: text.lower(),
    "upper": lambda text: text.upper(),
    "replace": lambda old, new, text: text.replace(old, new),
    "contains": lambda part, text: part in text,
    "hasKey": lambda mapping, key: key in mapping,
    "get": lambda mapping, key: mapping.get(key, ""),
    "list": lambda *items: list(items),
    "dict": dict_of,
    "ternary": lambda yes, no, condition: yes if truthy(condition) else no,
}
