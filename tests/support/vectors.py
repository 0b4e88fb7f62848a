"""GrowthBook's SDK test vectors (../shared/vectors/bucketing-cases.json) as pytest params.

The file is read where it lies (beside the checkout, or at $VERDICT_VECTORS); where it is absent
the cases skip with a message saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_VECTORS = _REPO_ROOT.parent / "shared" / "vectors" / "bucketing-cases.json"
VECTORS = Path(os.environ.get("VERDICT_VECTORS", str(_DEFAULT_VECTORS)))


def cases(section: str) -> list[Any]:
    """The section's cases as pytest params, or one skipped param when the file is absent."""
    if not VECTORS.is_file():
        reason = f"GrowthBook spec vectors not found at {VECTORS} (set VERDICT_VECTORS)"
        return [pytest.param(None, id=f"{section}-vectors-missing", marks=pytest.mark.skip(reason))]
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))[section]
    assert cases, f"section {section} of {VECTORS} is empty"
    return [pytest.param(case, id=_case_id(section, i, case)) for i, case in enumerate(cases)]


def _case_id(section: str, index: int, case: list[Any]) -> str:
    if section == "hash":
        label = f"v{case[2]}-{case[0]!r}-{case[1]!r}"
    elif section == "getEqualWeights":
        label = f"n={case[0]}"
    else:
        label = str(case[0])
    return f"{index:03d}-{label}"
