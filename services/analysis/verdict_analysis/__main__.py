"""Runs the analysis service: `python -m verdict_analysis` (port VERDICT_ANALYSIS_PORT)."""

from __future__ import annotations

from verdict_analysis.service import build
from verdict_platform.server import run_service


def main() -> None:
    """Serves AnalysisService on VERDICT_ANALYSIS_PORT until SIGTERM."""
    run_service("analysis", lambda s: s.analysis_port, build)


if __name__ == "__main__":
    main()
