"""Compiles the C accelerators in place: the assignment engine's (`verdict/evaluation/_native.c`)
and the Assign hot path's (`verdict_assignment/assign/_fastpath.c`).

Run by `make setup`. Without a C compiler the build is skipped with a warning and the code runs
its pure-Python reference (same answers, slower); `make test` then fails its native-path tests,
so CI always exercises both. `scripts/check_native.py` uses `build` for its sanitizer builds,
which go to a directory of their own and never replace these.
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


def build(
    package_root: Path,
    module: str,
    flags: list[str] = FLAGS,
    link_flags: tuple[str, ...] = (),
    out: Path | None = None,
) -> Path:
    """Compiles `module`, in place beside its source or, with `out`, under `out` (as
    `out/<package path>/<name>.so`); returns the built file."""
    os.chdir(package_root)
    source = module.replace(".", "/") + ".c"
    extension = Extension(
        module, [source], extra_compile_args=flags, extra_link_args=list(link_flags)
    )
    dist = Distribution({"name": module, "ext_modules": [extension]})
    command = dist.get_command_obj("build_ext")
    command.inplace = out is None
    work = ROOT / ".venv" / ("build-native" if out is None else "build-native-" + out.name)
    command.build_temp = str(work)
    command.build_lib = str(work / "lib" if out is None else out)
    command.force = out is not None  # the object files of another build's flags are no use
    dist.run_command("build_ext")
    return Path(command.get_ext_fullpath(module)).resolve()


def main() -> int:
    for package_root, module in MODULES:
        try:
            build(package_root, module)
        except Exception as error:  # no compiler or headers: the Python reference still works
            print(f"warning: {module} not built ({error})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
