"""Cost of one `$regex` condition evaluation: Python's `re` (the engine before) against RE2 (now).

For each typical pattern and value, the compiled condition `{"ua": {"$regex": pattern}}` is
called in a loop, on the Python closure path (`compile_condition`) and on the compiled program
path (`_native.Program`, which calls the pattern's test from C). The same value again and again
is what a service sees for languages or popular user agents: `JsRegex` answers those from its
memo of recent short texts. `re2_uncached_ns` is the call into RE2 itself (what a value not seen
recently costs, and every value over 256 characters). The `re` rows rebuild the closure exactly
as it was before RE2 (compiled `re` pattern, `search(...) is not None`). One
adversarial row shows why: `^(a+)+$` against a's and a "!" takes exponential time with `re` (a
short value here, a few more characters double it) and linear time with RE2 (100,000 characters).

Writes bench/results/regex.json. Run: `.venv/bin/python bench/bench_regex.py`.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verdict.evaluation import compile_condition
from verdict.evaluation.jsvalues import to_string
from verdict.evaluation.programs import lower_condition
from verdict.evaluation.regex import UNANCHORED, compile_js_regex

try:
    from verdict.evaluation import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _native = None

RESULTS = Path(__file__).resolve().parent / "results" / "regex.json"
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CASES: list[tuple[str, str, str]] = [  # (name, pattern, value)
    ("user-agent alternation, no match", "(iPhone|iPad|Android|Mobile|Tablet)", DESKTOP),
    ("user-agent alternation, match", "(iPhone|iPad|Android|Mobile|Tablet)", MOBILE),
    ("suffix match", "@example\\.com$", "jane.doe@example.com"),
    ("suffix, no match", "@example\\.com$", "jane.doe@example.org"),
    ("prefix with class", "^v?2\\.[0-9]+", "2.14.1"),
    ("GrowthBook case: -12-25$", "-12-25$", "1980-12-25"),
]


def re_condition(pattern: str) -> Callable[[dict[str, Any]], bool]:
    """The condition as it was evaluated before RE2 (Python `re`)."""
    search = re.compile(pattern).search

    def predicate(actual: Any) -> bool:
        return search(actual if type(actual) is str else to_string(actual)) is not None

    def condition(attributes: dict[str, Any]) -> bool:
        return predicate(attributes.get("ua"))

    return condition


def re2_uncached(pattern: str) -> Callable[[dict[str, Any]], bool]:
    """The condition's work without the memo: encode, then one call into RE2."""
    match = compile_js_regex(pattern).engine.Match

    def condition(attributes: dict[str, Any]) -> bool:
        data = attributes["ua"].encode("utf-8", "surrogatepass")
        return bool(match(UNANCHORED, data, 0, len(data))[0][0] >= 0)

    return condition


def per_call_ns(function: Callable[[dict[str, Any]], bool], attributes: dict[str, Any]) -> float:
    """Median of 7 runs of the nanoseconds per call, each run ~0.1 s."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            function(attributes)
        if time.perf_counter() - start > 0.1:
            break
        n *= 2
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            function(attributes)
        runs.append((time.perf_counter() - start) / n * 1e9)
    return statistics.median(runs)


def adversarial() -> dict[str, Any]:
    condition = {"ua": {"$regex": "^(a+)+$"}}
    short = {"ua": "a" * 18 + "!"}
    start = time.perf_counter()
    assert re_condition("^(a+)+$")(short) is False
    re_s = time.perf_counter() - start
    long = {"ua": "a" * 100_000 + "!"}
    start = time.perf_counter()
    assert compile_condition(condition)(long) is False
    re2_s = time.perf_counter() - start
    return {
        "pattern": "^(a+)+$",
        "re_seconds_for_19_chars": round(re_s, 4),
        "re2_seconds_for_100001_chars": round(re2_s, 4),
    }


def main() -> None:
    rows = []
    for name, pattern, value in CASES:
        attributes = {"ua": value}
        condition = {"ua": {"$regex": pattern}}
        closure = compile_condition(condition)
        old = re_condition(pattern)
        assert closure(attributes) == old(attributes), name
        row = {
            "case": name,
            "pattern": pattern,
            "value_chars": len(value),
            "re_closure_ns": round(per_call_ns(old, attributes)),
            "re2_closure_ns": round(per_call_ns(closure, attributes)),
            "re2_uncached_ns": round(per_call_ns(re2_uncached(pattern), attributes)),
        }
        if _native is not None:
            program = _native.Program(lower_condition(condition))
            assert program(attributes) == closure(attributes), name
            row["re2_program_ns"] = round(per_call_ns(program, attributes))
        rows.append(row)
        print(json.dumps(row))
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "per_condition_evaluation": rows,
        "adversarial": adversarial(),
    }
    print(json.dumps(result["adversarial"]))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
