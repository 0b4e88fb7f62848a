"""Page sizes and opaque page tokens (pure).

A token is URL-safe base64 of a small JSON array: the list it belongs to, the filter it was issued
under, and the position after the last item returned (keyset pagination: stable while rows are
added, and no OFFSET scan). A token from another list or another filter, or one that is not ours,
is INVALID_ARGUMENT naming `page_token`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from verdict_platform.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

T = TypeVar("T")
Scalar = str | int


def page_size(requested: int) -> int:
    """The page size to use: 0 means the default; outside 1..1000 is INVALID_ARGUMENT."""
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument.of("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0: default)")
    return requested


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the position after its last item (None on the last page)."""

    items: Sequence[T]
    after: tuple[Scalar, ...] | None


def encode_token(listing: str, filter_: str, after: tuple[Scalar, ...] | None) -> str:
    """The opaque token for the page after `after`; empty when there is none."""
    if after is None:
        return ""
    raw = json.dumps([listing, filter_, *after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(
    token: str, listing: str, filter_: str, shape: Sequence[type]
) -> tuple[Scalar, ...] | None:
    """The position a token stands for (None for an empty token); INVALID_ARGUMENT if it is bad."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument.of("page_token", "is not a token this server issued") from None
    if (
        not isinstance(value, list)
        or len(value) != 2 + len(shape)
        or value[0] != listing
        or not all(type(item) is kind for item, kind in zip(value[2:], shape, strict=True))
    ):
        raise InvalidArgument.of("page_token", "is not a token of this list")
    if value[1] != filter_:
        raise InvalidArgument.of("page_token", "was issued for another filter")
    return tuple(value[2:])


def time_position(at: datetime) -> str:
    """A timestamp as it travels in a token (ISO 8601, microseconds, with offset)."""
    return at.isoformat()


def parse_time_position(text: Scalar) -> datetime:
    """The timestamp a token carries; INVALID_ARGUMENT when it is not one."""
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        raise InvalidArgument.of("page_token", "is not a token of this list") from None
    if at.tzinfo is None:
        raise InvalidArgument.of("page_token", "is not a token of this list")
    return at
