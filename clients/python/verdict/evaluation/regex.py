"""`$regex` / `$regexi`: JavaScript regular expressions matched by RE2, in time linear in the text.

GrowthBook's reference evaluates `new RegExp(pattern).test(value)` in JavaScript. A backtracking
engine (JavaScript's, or Python's `re`) takes exponential time on patterns such as `^(a+)+$`
against a crafted value, and on the assignment service that stalls every request behind it. RE2
(PyPI `google-re2`) matches in time linear in the text and refuses what it cannot match that way:
backreferences and lookaround. Those patterns are invalid here (refused when a condition is
written, never matching in one already stored).

`translate` rewrites the JavaScript syntax RE2 reads differently: named groups `(?<n>...)` become
`(?P<n>...)`, `\\uXXXX` becomes `\\x{XXXX}` (surrogate pairs joined), `[^]` (any character) and
`[]` (none) get RE2 spellings, `.` excludes every JavaScript line terminator and `\\s`/`\\S` take
JavaScript's set of white space. Syntax JavaScript does not have (inline flags `(?i)`,
`(?P<n>...)`) is refused so that a pattern means here what it means in the other SDKs.
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]
from re2 import _re2  # the engine itself: the wrapper's `search` builds a match object per call

_JS_SPACE = (
    "\\t\\n\\x0b\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}\\x{feff}"
)
_ANY_BUT_LINE_TERMINATOR = "[^\\n\\r\\x{2028}\\x{2029}]"
UNANCHORED = _re2.RE2.Anchor.UNANCHORED
"""RE2's anchor for a search anywhere in the text (`RegExp.test`)."""
_MEMO_ENTRIES = 1024
_MEMO_MAX_CHARS = 256
_HEX = frozenset("0123456789abcdefABCDEF")


class RegexError(ValueError):
    """The pattern is no JavaScript regular expression that RE2 can match."""


def _hex4(pattern: str, at: int) -> int | None:
    digits = pattern[at : at + 4]
    return int(digits, 16) if len(digits) == 4 and set(digits) <= _HEX else None


def _escape(pattern: str, i: int, in_class: bool, out: list[str]) -> int:
    """Appends the translation of the escape at `pattern[i]` (a backslash); returns the next i."""
    if i + 1 >= len(pattern):
        raise RegexError("\\ at end of pattern")
    char = pattern[i + 1]
    if char == "u":
        unit = _hex4(pattern, i + 2)
        if unit is None:  # JavaScript reads "\u" without four digits as "u"
            out.append("u")
            return i + 2
        end = i + 6
        if 0xD800 <= unit <= 0xDBFF and pattern.startswith("\\u", end):
            low = _hex4(pattern, end + 2)
            if low is not None and 0xDC00 <= low <= 0xDFFF:
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                end += 6
        if 0xD800 <= unit <= 0xDFFF:
            raise RegexError("a lone surrogate cannot be matched in UTF-8 text")
        out.append(f"\\x{{{unit:x}}}")
        return end
    if char == "s":
        out.append(_JS_SPACE if in_class else f"[{_JS_SPACE}]")
    elif char == "S" and not in_class:
        out.append(f"[^{_JS_SPACE}]")
    elif char == "b" and in_class:  # a backspace in a JavaScript class
        out.append("\\x08")
    elif char == "k":
        raise RegexError("backreferences (\\k<name>) are not supported")
    elif char in "123456789":
        raise RegexError(f"backreferences (\\{char}) are not supported")
    else:
        out.append(pattern[i : i + 2])
    return i + 2


def _group(pattern: str, i: int, out: list[str]) -> int:
    """Appends the translation of the group opening at `pattern[i]` ("("); returns the next i."""
    if not pattern.startswith("(?", i):
        out.append("(")
        return i + 1
    if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
        raise RegexError("lookaround ((?=, (?!, (?<=, (?<!) is not supported")
    if pattern.startswith("(?:", i):
        out.append("(?:")
        return i + 3
    if pattern.startswith("(?<", i):
        out.append("(?P<")
        return i + 3
    raise RegexError(f"{pattern[i : i + 3]!r} is not JavaScript syntax")


def translate(pattern: str) -> str:
    """The RE2 spelling of a JavaScript pattern; RegexError for what RE2 cannot match."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i = _escape(pattern, i, in_class, out)
        elif in_class:
            in_class = char != "]"
            out.append(char)
            i += 1
        elif char == "[":
            if pattern.startswith("[^]", i):
                out.append("(?s:.)")
                i += 3
            elif pattern.startswith("[]", i):
                out.append("[^\\x00-\\x{10ffff}]")
                i += 2
            else:
                in_class = True
                out.append(char)
                i += 1
        elif char == "(":
            i = _group(pattern, i, out)
        else:
            out.append(_ANY_BUT_LINE_TERMINATOR if char == "." else char)
            i += 1
    return "".join(out)


class JsRegex:
    """A JavaScript pattern compiled by RE2; `test(text)` is `RegExp.prototype.test`."""

    __slots__ = ("_match", "_memo", "engine", "insensitive", "pattern")

    def __init__(self, pattern: str, *, insensitive: bool = False) -> None:
        options = re2.Options()
        options.log_errors = False  # RE2 would print every refused pattern to stderr
        options.never_capture = True  # only whether it matches is asked
        options.case_sensitive = not insensitive
        engine = _re2.RE2(translate(pattern).encode("utf-8", "surrogatepass"), options)
        if not engine.ok():
            raise RegexError(engine.error().decode("utf-8", "replace"))
        self.pattern = pattern
        """The JavaScript source."""
        self.insensitive = insensitive
        """Whether the `i` flag is set ($regexi)."""
        self.engine: Any = engine
        """The RE2 object (`re2._re2.RE2`)."""
        self._match = engine.Match
        # Answers for recent short texts: attribute values repeat (languages, user agents), and
        # a dict lookup costs a fraction of a call into RE2 (~1 µs). Bounded in entries and size.
        self._memo: dict[str, bool] = {}

    def test(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text`."""
        found = self._memo.get(text)
        if found is not None:
            return found
        data = text.encode("utf-8", "surrogatepass")
        found = self._match(UNANCHORED, data, 0, len(data))[0][0] >= 0
        if len(text) <= _MEMO_MAX_CHARS:
            if len(self._memo) >= _MEMO_ENTRIES:
                self._memo.clear()
            self._memo[text] = found
        return bool(found)


def compile_js_regex(pattern: Any, *, insensitive: bool = False) -> JsRegex:
    """`pattern` compiled; RegexError when it is no string or no pattern RE2 can match."""
    if not isinstance(pattern, str):
        raise RegexError(f"a pattern is a string, not {type(pattern).__name__}")
    return JsRegex(pattern, insensitive=insensitive)
