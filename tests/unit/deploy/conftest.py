"""The chart renderer lives in scripts/chart (a tool, not a package of the platform)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
