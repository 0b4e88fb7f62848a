"""Runs the analysis service: `python -m verdict_analysis` (port VERDICT_ANALYSIS_PORT)."""

from verdict_analysis.service import DEFINITION
from verdict_platform.server import run_service

if __name__ == "__main__":
    run_service(DEFINITION)
