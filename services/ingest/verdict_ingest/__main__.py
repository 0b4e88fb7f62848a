"""Runs the ingest service: `python -m verdict_ingest` (port VERDICT_INGEST_PORT)."""

from verdict_ingest.service import DEFINITION
from verdict_platform.server import run_service

if __name__ == "__main__":
    run_service(DEFINITION)
