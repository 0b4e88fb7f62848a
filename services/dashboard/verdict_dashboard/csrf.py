"""CSRF protection: every state-changing request carries the session's token.

The token is random per session, rendered in forms (hidden field `csrf_token`) and in a meta tag
that the page's script copies into the `X-CSRF-Token` header of htmx requests. A cross-site page
cannot read it, so it cannot forge a request that carries it (SameSite=Strict cookies are the
second line). Pure.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def submitted_token(headers: Mapping[str, str], form: Mapping[str, object] | None) -> str | None:
    """The token a request carries: the header first, else the form field."""
    header = headers.get(HEADER)
    if header:
        return header
    if form is not None:
        value = form.get(FORM_FIELD)
        if isinstance(value, str) and value:
            return value
    return None


def token_matches(expected: str, submitted: str | None) -> bool:
    """True when `submitted` is the session's token (compared in constant time)."""
    if not submitted or not expected:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
