"""Makes the repository's packages importable in the venv (a .pth file) and installs the
`verdict` command into the venv's bin. Run by `make setup`; idempotent."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = [
    "clients/python",
    "services/platform",
    "services/assignment",
    "services/ingest",
    "services/analysis",
    "services/dashboard",
]

site_packages = Path(site.getsitepackages()[0])
(site_packages / "verdict-dev.pth").write_text("".join(f"{ROOT / d}\n" for d in PACKAGE_DIRS))
script = Path(sys.prefix) / "bin" / "verdict"
script.write_text(
    f"#!{sys.executable}\nimport sys\nfrom verdict_platform.cli import main\nsys.exit(main())\n"
)
os.chmod(script, 0o755)
