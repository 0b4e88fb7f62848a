"""Why a unit got its answer: the `Explanation` of one assignment, for debugging and QA.

Filled in by the same steps that assign (`eligibility.evaluate` with a `Trace`), so an explanation
cannot disagree with the answer it explains. Off the hot path: `Evaluator.explain` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verdict.evaluation.compiled import plain
from verdict.evaluation.conditions import ConditionError, compile_condition


@dataclass(frozen=True, slots=True)
class Explanation:
    """Mirrors the proto's `Explanation`."""

    hash_attribute: str
    """The attribute hashed (the hash attribute, or the fallback attribute when it was used)."""
    hash_value: str
    """The value hashed; empty when the unit has none."""
    bucket: float | None
    """The unit's bucket in [0, 1), when it was computed."""
    layer_position: float | None
    """The unit's position in the experiment's layer, when it was computed."""
    failed_condition: str
    """The part of the targeting condition that failed, as JSON; empty when targeting passed."""
    detail: str
    """One sentence, e.g. "bucket 0.734 is outside the covered ranges [0, 0.25), [0.5, 0.75)"."""


class Trace:
    """What the steps saw, collected while they run; `explanation()` freezes it."""

    __slots__ = (
        "bucket", "detail", "failed_condition", "hash_attribute", "hash_value", "layer_position",
    )  # fmt: skip

    def __init__(self) -> None:
        self.hash_attribute = ""
        self.hash_value = ""
        self.bucket: float | None = None
        self.layer_position: float | None = None
        self.failed_condition = ""
        self.detail = ""

    def explanation(self) -> Explanation:
        return Explanation(
            self.hash_attribute,
            self.hash_value,
            self.bucket,
            self.layer_position,
            self.failed_condition,
            self.detail,
        )


def failing_part(
    condition: Mapping[str, Any],
    attributes: Mapping[str, Any],
    saved_groups: Mapping[str, Sequence[Any]],
) -> str:
    """The first top-level entry of `condition` that `attributes` fail, as JSON (a condition is
    the conjunction of its entries); the whole condition when no single entry can be blamed."""
    for key, value in condition.items():
        part = {key: value}
        try:
            holds = compile_condition(part, saved_groups)(attributes)
        except ConditionError:
            continue
        if not holds:
            return to_json(part)
    return to_json(condition)


def to_json(value: Any) -> str:
    """Compact JSON of a configuration value (frozen mappings and tuples included)."""
    return json.dumps(value, separators=(",", ":"), default=plain, ensure_ascii=False)


def ranges_text(ranges: Sequence[tuple[float, float]]) -> str:
    """Ranges as "[0, 0.25), [0.5, 0.75)"."""
    return ", ".join(f"[{start:g}, {end:g})" for start, end in ranges) or "none"
