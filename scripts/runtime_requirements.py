"""Prints the pinned requirements a deployed process needs: the packages requirements.in lists
before its "# Development" block, at the versions of requirements.lock. The image installs these
(with the lock as constraints for their dependencies), not the test and code-generation tools."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(root: Path = ROOT) -> list[str]:
    """`name==version` of every runtime package, in requirements.in's order."""
    locked = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        if "==" in line:
            name, version = line.strip().split("==", 1)
            locked[_key(name)] = f"{name}=={version}"
    wanted = []
    for line in (root / "requirements.in").read_text().splitlines():
        if line.startswith("# Development"):
            break
        name = line.split("#", 1)[0].strip()
        if name:
            if _key(name) not in locked:
                raise SystemExit(
                    f"{name} is in requirements.in but not pinned in requirements.lock"
                )
            wanted.append(locked[_key(name)])
    return wanted


if __name__ == "__main__":
    sys.stdout.write("".join(line + "\n" for line in runtime_requirements()))
