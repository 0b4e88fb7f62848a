"""`make check-native`: the C accelerators built with AddressSanitizer and UBSan, run through the
randomised C-against-Python tests and the fuzz tests; fails on any sanitizer report.

The sanitizer builds go to `.venv/native-sanitized/` (the normal in-place builds stay as they
are) and are loaded in place of them by the pytest plugin `support.sanitized_native`. CPython is
not built with ASan, so gcc's runtime is preloaded (LD_PRELOAD), and leak detection is off: the
interpreter keeps memory until exit by design. Reports are written under the output directory;
any report, or any test failure, fails the check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_native import FLAGS, MODULES, ROOT, build

OUT = ROOT / ".venv" / "native-sanitized"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
TESTS = [
    "tests/unit/evaluation",
    "tests/unit/assign/test_assign_fastpath.py",
    "tests/unit/assign/test_assign_fastpath_limits.py",
]
FUZZ_EXAMPLES = "400"


def runtime(name: str) -> str:
    """The path of gcc's sanitizer runtime `name` (e.g. libasan.so)."""
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        raise SystemExit(f"{name} not found: install gcc (its runtime libraries come with it)")
    return os.path.realpath(found)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    flags = [flag for flag in FLAGS if not flag.startswith("-O")] + SANITIZE
    built = [
        f"{module}={build(root, module, flags, ('-fsanitize=address,undefined',), OUT)}"
        for root, module in MODULES
    ]
    os.chdir(ROOT)
    reports = OUT / "reports"
    reports.mkdir()
    env = dict(
        os.environ,
        LD_PRELOAD=runtime("libasan.so"),
        ASAN_OPTIONS=f"detect_leaks=0:abort_on_error=1:log_path={reports}/asan",
        UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={reports}/ubsan",
        VERDICT_SANITIZED_NATIVE=os.pathsep.join(built),
        VERDICT_FUZZ_EXAMPLES=FUZZ_EXAMPLES,
        PYTHONMALLOC="malloc",  # every allocation through ASan's malloc, not pymalloc's arenas
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
        ),
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "support.sanitized_native", *TESTS]
    print("running", " ".join(command), "under ASan + UBSan", flush=True)
    tests = subprocess.run(command, env=env, check=False)
    found = sorted(reports.iterdir())
    for report in found:
        print(f"== sanitizer report {report.name}\n{report.read_text(errors='replace')}")
    if tests.returncode != 0 or found:
        print("check-native: FAILED", file=sys.stderr)
        return 1
    print("check-native: the C accelerators ran clean under AddressSanitizer and UBSan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
