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
# The command works on this project's data folder from any directory (unless VERDICT_DATA_DIR
# says otherwise), so `verdict keys list` run elsewhere never creates a stray embedded database.
script.write_text(
    f"#!{sys.executable}\n"
    "import os, sys\n"
    f"os.environ.setdefault('VERDICT_DATA_DIR', {str(ROOT / '.data')!r})\n"
    "from verdict_platform.cli import main\n"
    "sys.exit(main())\n"
)
os.chmod(script, 0o755)
