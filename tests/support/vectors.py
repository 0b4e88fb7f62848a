"""GrowthBook's SDK test vectors (tests/vectors/bucketing-cases.json, MIT) as pytest params.

Every case becomes its own test. The file is part of the repository: when it is missing, or a
section is empty, collecting the tests fails (never a skip), since a run without the cases would
prove nothing about conformance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "bucketing-cases.json"


class VectorsMissing(RuntimeError):
    """The committed vectors are absent or empty."""


def cases(section: str, path: Path = VECTORS) -> list[Any]:
    """The section's cases as pytest params, one per case; VectorsMissing when there are none."""
    if not path.is_file():
        raise VectorsMissing(f"GrowthBook's vectors are missing: {path} is part of the repository")
    found = json.loads(path.read_text(encoding="utf-8")).get(section)
    if not found:
        raise VectorsMissing(f"section {section!r} of {path} is missing or empty")
    return [pytest.param(case, id=_case_id(section, i, case)) for i, case in enumerate(found)]


def _case_id(section: str, index: int, case: list[Any]) -> str:
    if section == "hash":
        label = f"v{case[2]}-{case[0]!r}-{case[1]!r}"
    elif section == "getEqualWeights":
        label = f"n={case[0]}"
    else:
        label = str(case[0])
    return f"{index:03d}-{label}"
