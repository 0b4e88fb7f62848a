"""CSRF tokens: taken from the header first, else the form; compared exactly."""

from __future__ import annotations

from verdict_dashboard.csrf import submitted_token, token_matches


def test_the_header_wins_over_the_form_field() -> None:
    assert submitted_token({"x-csrf-token": "h"}, {"csrf_token": "f"}) == "h"
    assert submitted_token({}, {"csrf_token": "f"}) == "f"
    assert submitted_token({}, {}) is None
    assert submitted_token({}, None) is None
    assert submitted_token({}, {"csrf_token": ""}) is None


def test_only_the_exact_token_matches() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", None)
    assert not token_matches("abc", "")
    assert not token_matches("", "")
    assert not token_matches("abc", "abcd")
