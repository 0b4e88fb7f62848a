"""What changed between two versions of a resource: field path to {"before", "after"} (pure).

Paths use proto field names (`variants[1].weight`, `analysis_plan.alpha`, `targeting.country`), the
same names as field masks and field violations. Objects are compared key by key and lists of equal
length item by item; anything else that differs is one change with both values whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

IGNORED = frozenset({"update_time"})
"""Fields that change with every write and say nothing about what the write did."""

Changes = dict[str, dict[str, Any]]


def as_json(message: Message) -> dict[str, Any]:
    """The message as JSON with proto field names (for diffs and the audit log)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> Changes:
    """Field path to {"before": ..., "after": ...} for each difference; None means absent."""
    changes: Changes = {}
    _diff_objects("", before or {}, after or {}, changes, top=True)
    return changes


def _diff_objects(
    path: str, before: Mapping[str, Any], after: Mapping[str, Any], out: Changes, *, top: bool
) -> None:
    for name in sorted(set(before) | set(after)):
        if top and name in IGNORED:
            continue
        child = f"{path}.{name}" if path else name
        _diff_values(child, before.get(name), after.get(name), out)


def _diff_values(path: str, before: Any, after: Any, out: Changes) -> None:
    if before == after:
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        _diff_objects(path, before, after, out, top=False)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            _diff_values(f"{path}[{i}]", b, a, out)
    else:
        out[path] = {"before": before, "after": after}
