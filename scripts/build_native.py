"""Compiles the C accelerators in place: the assignment engine's (`verdict/evaluation/_native.c`)
and the Assign hot path's (`verdict_assignment/assign/_fastpath.c`).

Run by `make setup`. Without a C compiler the build is skipped with a warning and the code runs
its pure-Python reference (same answers, slower); `make test` then fails its native-path tests,
so CI always exercises both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent.parent
MODULES = [  # (package root, dotted module name)
    (ROOT / "clients" / "python", "verdict.evaluation._native"),
    (ROOT / "services" / "assignment", "verdict_assignment.assign._fastpath"),
]
FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def build(package_root: Path, module: str) -> None:
    os.chdir(package_root)
    source = module.replace(".", "/") + ".c"
    extension = Extension(module, [source], extra_compile_args=FLAGS)
    dist = Distribution({"name": module, "ext_modules": [extension]})
    command = dist.get_command_obj("build_ext")
    command.inplace = True
    command.build_temp = str(ROOT / ".venv" / "build-native")
    command.build_lib = str(ROOT / ".venv" / "build-native" / "lib")
    dist.run_command("build_ext")


def main() -> int:
    for package_root, module in MODULES:
        try:
            build(package_root, module)
        except Exception as error:  # no compiler or headers: the Python reference still works
            print(f"warning: {module} not built ({error})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
