"""Collects each fault test's row; at the end prints the table and, under `make faults`
(VERDICT_FAULTS_REPORT), writes it into docs/RELIABILITY.md between its markers."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fault_kit import FULL, FaultRow, table

BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"


def write_report(path: Path, rows: list[FaultRow]) -> None:
    """Replaces the measured section of the report (between the markers) with `rows`."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    stamp = (
        f"Measured by `make faults` ({'full' if FULL else 'reduced'} sizes) on {when}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}."
    )
    path.write_text(f"{head}{BEGIN}\n{stamp}\n\n{table(rows)}\n{END}{tail}")


@pytest.fixture(scope="session")
def fault_report() -> Iterator[list[FaultRow]]:
    rows: list[FaultRow] = []
    yield rows
    if not rows:
        return
    print("\n\nFaults (" + ("full" if FULL else "reduced") + " sizes)\n" + table(rows))
    target = os.environ.get("VERDICT_FAULTS_REPORT")
    if target:
        write_report(Path(target), rows)
