"""Verdict Python client.

- `verdict.evaluation`: the bucketing and targeting rules (pure functions, `Evaluator`).
- `verdict.local`: `LocalEvaluator`, which follows the server's config snapshot and assigns
  in-process with the same results as `AssignmentService.Assign`.
- `verdict.tracking`: `Tracker` / `AsyncTracker`, which send events in the background.
- `verdict.v1`: the generated messages and gRPC stubs.

Submodules load on first use, so importing one does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AsyncTracker", "LocalEvaluator", "Tracker", "TrackerOptions"]

_HOMES = {
    "LocalEvaluator": "verdict.local",
    "Tracker": "verdict.tracking",
    "AsyncTracker": "verdict.tracking",
    "TrackerOptions": "verdict.tracking",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'verdict' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
