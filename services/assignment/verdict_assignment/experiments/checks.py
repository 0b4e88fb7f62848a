"""Small reusable checks and the collector that turns them into field violations (pure)."""

from __future__ import annotations

import math
import re

from google.protobuf.descriptor import EnumDescriptor

from verdict_platform.errors import FieldViolation, InvalidArgument

SLUG = re.compile(r"[a-z0-9_-]{1,64}")
SLUG_RULE = "must be a slug: 1 to 64 lowercase letters, digits, '-' or '_'"


def is_slug(value: str) -> bool:
    """True for 1 to 64 lowercase letters, digits, '-' and '_'."""
    return SLUG.fullmatch(value) is not None


def is_finite(value: float) -> bool:
    """False for NaN and infinities, which JSON cannot carry and no range admits."""
    return math.isfinite(value)


def in_closed(value: float, low: float, high: float) -> bool:
    """low <= value <= high, with NaN outside."""
    return is_finite(value) and low <= value <= high


def in_open(value: float, low: float, high: float) -> bool:
    """low < value < high, with NaN outside."""
    return is_finite(value) and low < value < high


def is_known(enum: EnumDescriptor, number: int) -> bool:
    """True when `number` is a declared value of the enum (proto3 enums accept any int32)."""
    return number in enum.values_by_number


class Violations:
    """Collects every violation of a request, so the caller sees all of them at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Records that `field` is invalid."""
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        """Records a violation unless `ok`; returns `ok`."""
        if not ok:
            self.add(field, description)
        return ok

    def raise_if_any(self) -> None:
        """Raises InvalidArgument naming every collected field."""
        if self.items:
            raise InvalidArgument(self.items)
