"""`$regex` / `$regexi` run on RE2 (linear time), with JavaScript's syntax and semantics."""

from __future__ import annotations

from typing import Any

import pytest
from re2 import _re2  # type: ignore[import-untyped]

from verdict.evaluation import (
    Evaluator,
    ExperimentConfig,
    Reason,
    VariantConfig,
    compile_condition,
    evaluate_condition,
)
from verdict.evaluation.operators import regex_of
from verdict.evaluation.programs import V_REGEX, lower_condition
from verdict.evaluation.regex import JsRegex, RegexError, compile_js_regex, translate

native = pytest.importorskip("verdict.evaluation._native", reason="accelerator not built")

CATASTROPHIC = {"email": {"$regex": "^(a+)+$"}}
CRAFTED = "a" * 100_000 + "!"  # a backtracking engine tries 2**100000 ways to split the a's


def _nodes(node: Any) -> list[Any]:
    found = [node]
    for item in node:
        if isinstance(item, tuple) and item and isinstance(item[0], int):
            found += _nodes(item)
        elif isinstance(item, tuple):
            for child in item:
                if isinstance(child, tuple):
                    found += _nodes(child)
    return found


def test_regex_patterns_compile_to_re2_engines() -> None:
    regex = regex_of("^(a+)+$", insensitive=False)
    assert isinstance(regex, JsRegex)
    assert isinstance(regex.engine, _re2.RE2)


def test_regex_catastrophic_pattern_answers_on_the_closure_path() -> None:
    closure = compile_condition(CATASTROPHIC)
    assert closure({"email": CRAFTED}) is False
    assert closure({"email": "a" * 100_000}) is True


def test_regex_catastrophic_pattern_answers_on_the_program_path_through_re2() -> None:
    lowered = lower_condition(CATASTROPHIC)
    regex_nodes = [node for node in _nodes(lowered) if node[0] == V_REGEX]
    assert len(regex_nodes) == 1
    test = regex_nodes[0][1]
    assert isinstance(test.__self__, JsRegex)  # the C program calls JsRegex.test
    assert isinstance(test.__self__.engine, _re2.RE2)
    program = native.Program(lowered)
    assert program({"email": CRAFTED}) is False
    assert program({"email": "a" * 100_000}) is True


@pytest.mark.parametrize("use_native", [True, False])
def test_regex_catastrophic_pattern_in_an_evaluator(use_native: bool) -> None:
    config = ExperimentConfig(
        key="redos",
        variants=(VariantConfig("a", 0.5, is_control=True), VariantConfig("b", 0.5)),
        condition=CATASTROPHIC,
    )
    evaluator = Evaluator([config], native=use_native)
    [result] = evaluator.assign("u-1", {"email": CRAFTED})
    assert result.reason is Reason.NOT_TARGETED
    [result] = evaluator.assign("u-1", {"email": "aaa"})
    assert result.in_experiment


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("(?<year>\\d{4})-12-25$", "1980-12-25", True),  # named group, JavaScript's spelling
        ("a$", "a\n", False),  # JavaScript's $ is the end of the text, not before a last \n
        ("^b", "a\nb", False),  # and ^ its start (no multiline flag)
        ("a.b", "a\u2028b", False),  # . excludes every JavaScript line terminator
        ("a.b", "a\rb", False),
        ("a.b", "a-b", True),
        ("a[^]b", "a\nb", True),  # [^] is any character
        ("a[]b", "ab", False),  # [] is none
        ("\\u00e9t\\u00E9", "été", True),
        ("\\uD83D\\uDE00", "😀", True),  # a surrogate pair is one character
        ("\\u12", "u12", True),  # "\u" without four digits is "u"
        ("^\\s$", "\u00a0", True),  # JavaScript's white space includes NBSP
        ("^[\\s]$", "\u3000", True),
        ("^\\S$", "\u2003", False),
        ("[\\b]", "\b", True),  # a backspace inside a class
        ("\\bword\\b", "a word.", True),
        ("\\/path\\/", "/path/", True),
        ("[(?<]", "<", True),  # no group inside a class
        ("(?:ab)+$", "xabab", True),
        ("MOBILE", "mobile", False),
    ],
)
def test_regex_reads_javascript_syntax(pattern: str, text: str, expected: bool) -> None:
    assert compile_js_regex(pattern).test(text) is expected
    assert evaluate_condition({"x": {"$regex": pattern}}, {"x": text}) is expected
    assert native.Program(lower_condition({"x": {"$regex": pattern}}))({"x": text}) is expected


def test_regex_insensitive_folds_case_both_ways() -> None:
    assert compile_js_regex("(MOBILE|TABLET)", insensitive=True).test("android mobile")
    assert compile_js_regex("straße", insensitive=True).test("STRASSE") is False  # simple folding
    assert compile_js_regex("é", insensitive=True).test("É")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "backreference"),
        ("(?<n>a)\\k<n>", "backreference"),
        ("a(?=b)", "lookaround"),
        ("a(?!b)", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("(?<!a)b", "lookaround"),
        ("(?i)a", "not JavaScript syntax"),
        ("(?P<n>a)", "not JavaScript syntax"),
        ("/???***[)", "repetition"),
        ("(", "missing"),
        ("a{1001}", "repetition size"),
        ("\\", "end of pattern"),
        ("\\uD800", "surrogate"),
    ],
)
def test_regex_refuses_what_re2_cannot_match_linearly(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError, match=reason):
        compile_js_regex(pattern)
    assert regex_of(pattern, insensitive=False) is None
    assert evaluate_condition({"x": {"$regex": pattern}}, {"x": "a"}) is False  # never matches


def test_regex_refuses_a_pattern_that_is_no_string() -> None:
    with pytest.raises(RegexError, match="not int"):
        compile_js_regex(5)


def test_regex_translation_leaves_plain_patterns_alone() -> None:
    assert translate("^(Mobile|Tablet)[0-9]+$") == "^(Mobile|Tablet)[0-9]+$"


def test_regex_memo_is_bounded_and_keeps_answers_right() -> None:
    regex = compile_js_regex("^a")
    for i in range(3000):  # more texts than the memo holds
        assert regex.test(f"a{i}") is True
        assert regex.test(f"b{i}") is False
    assert 0 < len(regex._memo) <= 1024
    long = "a" * 1000
    assert regex.test(long) is True and long not in regex._memo  # long texts are not kept
